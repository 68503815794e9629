"""Integration: train -> evaluate on the tiny chorale set, resume, determinism, the CLIs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from musicbench.train import train

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def test_fast_dev_run(tmp_path, tiny_train_cfg):
    metrics, objects = train(tiny_train_cfg(tmp_path, "data.num_workers=0", debug="fdr"))
    assert objects["trainer"].global_step == 1
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))


def test_resume_continues_from_last_ckpt(tmp_path, tiny_train_cfg):
    _, first = train(tiny_train_cfg(tmp_path, "trainer.max_epochs=1", "test=false"))
    steps = first["trainer"].global_step
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    # Same run folder, no ckpt_path: as a requeued job, it resumes from last.ckpt and trains one more epoch.
    _, second = train(tiny_train_cfg(tmp_path, "trainer.max_epochs=2", "test=false"))
    assert second["trainer"].global_step == 2 * steps
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["epoch"] == 1 and ckpt["musicbench_config"]["trainer"]["max_epochs"] == 2
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        train(tiny_train_cfg(tmp_path / "other", "ckpt_path=last"))


def test_same_seed_same_metrics(tmp_path, tiny_train_cfg):
    runs = [
        train(tiny_train_cfg(tmp_path / str(i), "test=false", "trainer.max_epochs=1"))[0] for i in range(2)
    ]
    assert runs[0]["val/sdr"] == runs[1]["val/sdr"]
    other = train(tiny_train_cfg(tmp_path / "s", "test=false", "trainer.max_epochs=1", "seed=7"))[0]
    assert other["val/sdr"] != runs[0]["val/sdr"]


def test_make_run_preset_gives_bit_identical_summaries(tmp_path, tiny_chorales_root):
    """``make run``'s preset (fixed step budget and threads), shrunk by debug=tiny: two runs with the
    same seed write the same summary.json metrics, to the last bit. Each run is its own process, as
    ``make run`` is (and the preset's thread count stays out of this test worker)."""
    summaries = []
    for i in range(2):
        out = tmp_path / str(i)
        args = [
            "experiment=chorales_unet",
            "debug=tiny",
            "trainer.max_epochs=1",
            "callbacks.progress_bar=null",
        ]
        args += [f"paths.chorales_root={tiny_chorales_root}", f"paths.output_root={out}"]
        subprocess.run([BIN / "mb-train", *args], check=True, cwd=tmp_path, capture_output=True)
        (summary,) = out.glob("train/chorales_unet/*/summary.json")
        summaries.append(json.loads(summary.read_text()))
        config = (summary.parent / "config.yaml").read_text()
        assert "threads: 2" in config and "max_time: 00:00:30:00" in config
    assert summaries[0]["systems"]["model"]["median"]  # numbers per source and metric
    assert summaries[0]["systems"] == summaries[1]["systems"]
    runs = [next(tmp_path.glob(f"{i}/train/chorales_unet/*")) for i in range(2)]
    results = sorted((runs[0] / "results").glob("*.json"))
    assert len(results) == len(summaries[0]["tracks"]) > 0
    for a in results:
        first, second = json.loads(a.read_text()), json.loads((runs[1] / "results" / a.name).read_text())
        assert first["scores"] == second["scores"] and first["frames"] == second["frames"]


def test_cli_train_then_eval(tmp_path, tiny_chorales_root):
    env = {**os.environ, "MB_OUTPUT_ROOT": str(tmp_path / "outputs")}
    common = [f"paths.chorales_root={tiny_chorales_root}"]
    subprocess.run([BIN / "mb-train", "debug=tiny", *common], check=True, env=env, cwd=tmp_path)
    runs = list((tmp_path / "outputs" / "train" / "default").iterdir())
    assert len(runs) == 1
    run = runs[0]
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    summary = json.loads((run / "summary.json").read_text())
    test_tracks = json.loads((tiny_chorales_root / "manifest.json").read_text())["splits"]["test"]
    assert sorted(summary["tracks"]) == sorted(test_tracks)
    assert sorted(p.stem for p in (run / "results").glob("*.json")) == sorted(test_tracks)
    assert set(summary["systems"]) == {"model", "oracle_irm", "mixture"}  # evaluator=separation's oracle
    assert (run / "scores.csv").read_text().count("\n") == len(test_tracks) + 1
    # The same command again finds its folder, does not train again, and reuses the results.
    subprocess.run([BIN / "mb-train", "debug=tiny", *common], check=True, env=env, cwd=tmp_path)
    assert list((tmp_path / "outputs" / "train" / "default").iterdir()) == [run]

    out = subprocess.run(
        [BIN / "mb-eval", f"ckpt_path={run}", *common, "+evaluator.progress=false"],
        check=True,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert "global_sdr" in out.stdout
    evals = list((tmp_path / "outputs" / "eval" / "default").iterdir())
    ev = json.loads((evals[0] / "summary.json").read_text())
    # Same checkpoint, same data: the standalone evaluation reproduces the test stage of mb-train.
    for source, vals in summary["systems"]["model"]["median"].items():
        assert ev["systems"]["model"]["median"][source] == pytest.approx(vals, abs=1e-6)
