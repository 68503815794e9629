"""The evaluation runner survives kill -9 and shards: the summary equals that of one uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from musicbench.data.chorales import generate_chorales
from musicbench.evaluate import evaluate
from musicbench.train import train
from musicbench.utils.config import CONFIG_DIR

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
NUM_TEST = 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_chorales_root):
    """A tiny trained checkpoint and a dataset with 6 test tracks."""
    tmp = tmp_path_factory.mktemp("evalresume")
    root = tmp / "chorales"
    generate_chorales(
        root, progress=False, num_tracks=NUM_TEST + 2, max_seconds=4.0, num_test=NUM_TEST, num_valid=1
    )
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "debug=tiny",
                "trainer.max_epochs=1",
                "test=false",
                f"paths.output_dir={tmp / 'run'}",
                f"paths.chorales_root={root}",
                "callbacks.progress_bar=null",
            ],
        )
    train(cfg)
    return root, tmp / "run" / "checkpoints" / "last.ckpt"


def _evaluate(out_dir, root, ckpt, *overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "eval",
            overrides=[
                f"ckpt_path={ckpt}",
                f"paths.output_dir={out_dir}",
                f"paths.chorales_root={root}",
                "data=chorales",
                "data_from_checkpoint=false",
                "+evaluator.progress=false",
                *overrides,
            ],
        )
    return evaluate(cfg)[0]


def _results(run_dir):
    out = {}
    for p in sorted((run_dir / "results").glob("*.json")):
        r = json.loads(p.read_text())
        r.pop("wall_time_s")
        out[p.name] = r
    return out


def test_kill_9_then_rerun_equals_uninterrupted(setup, tmp_path):
    root, ckpt = setup
    reference = _evaluate(tmp_path / "ref", root, ckpt)

    env = {**os.environ, "MB_OUTPUT_ROOT": str(tmp_path / "outputs")}
    cmd = [
        BIN / "mb-eval",
        f"ckpt_path={ckpt}",
        f"paths.chorales_root={root}",
        "data=chorales",
        "data_from_checkpoint=false",
        "+evaluator.progress=false",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    run_dir = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = [
            p for p in (tmp_path / "outputs").glob("eval/*/*/results/*.json") if not p.name.startswith(".")
        ]
        if found:
            os.kill(proc.pid, signal.SIGKILL)
            run_dir = found[0].parents[1]
            break
        time.sleep(0.002)
    assert proc.wait() == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    done = [p for p in (run_dir / "results").glob("*.json") if not p.name.startswith(".")]
    assert 1 <= len(done) < NUM_TEST  # really interrupted mid-evaluation
    assert not (run_dir / "summary.json").exists()

    # The same command again resumes in the same folder and finishes.
    subprocess.run(cmd, env=env, cwd=tmp_path, check=True, capture_output=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["systems"] == reference["systems"]
    assert _results(run_dir) == _results(tmp_path / "ref")


def test_shards_then_merge_equals_uninterrupted(setup, tmp_path):
    root, ckpt = setup
    reference = _evaluate(tmp_path / "ref", root, ckpt)
    shared = tmp_path / "sharded"
    first = _evaluate(shared, root, ckpt, "shard=0/2")
    assert first["num_tracks"] == NUM_TEST // 2 and not (shared / "summary.json").exists()
    with pytest.raises(ValueError, match="3 of 6 tracks have no results") as err:
        _evaluate(shared, root, ckpt, "merge=true")
    missing = reference["tracks"][1::2]
    assert all(name in str(err.value) for name in missing)
    _evaluate(shared, root, ckpt, "shard=1/2")
    merged = _evaluate(shared, root, ckpt, "merge=true")
    assert merged["systems"] == reference["systems"] and merged["tracks"] == reference["tracks"]
    assert _results(shared) == _results(tmp_path / "ref")


@pytest.mark.parametrize("spec", ["2/2", "1", "a/b", "0/0"])
def test_bad_shard_spec_is_rejected(spec):
    from musicbench.evaluation.runner import parse_shard

    with pytest.raises(ValueError, match="K/N"):
        parse_shard(spec)
