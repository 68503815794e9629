"""Integration: run folders and results are keyed by the data's content, and mb-eval finds data through
the current paths config (command line, environment), else the training run's absolute root."""

import json
import os
import shutil

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from musicbench.data.identity import DataChangedError
from musicbench.data.index import MissingRootError
from musicbench.data.tracks import DatasetError
from musicbench.evaluate import evaluate
from musicbench.train import train
from musicbench.utils.config import CONFIG_DIR

pytestmark = pytest.mark.slow


def _compose(name, overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def _train(out_dir, chorales_root, *overrides):
    return train(
        _compose(
            "train",
            [
                "debug=tiny",
                "trainer.max_epochs=1",
                f"paths.output_dir={out_dir}",
                f"paths.chorales_root={chorales_root}",
                "callbacks.progress_bar=null",
                *overrides,
            ],
        )
    )


def _evaluate(out_dir, ckpt, *overrides):
    return evaluate(_compose("eval", [f"ckpt_path={ckpt}", f"paths.output_dir={out_dir}", *overrides]))[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_chorales_root):
    """A tiny run trained and tested on a copy of the chorales, named by a path relative to the working
    directory (as `make run` does)."""
    base = tmp_path_factory.mktemp("identity")
    shutil.copytree(tiny_chorales_root, base / "data" / "chorales")
    cwd = os.getcwd()
    os.chdir(base)
    try:
        _train(base / "run", "data/chorales")
    finally:
        os.chdir(cwd)
    return base / "data" / "chorales", base / "run"


def _results(run):
    return {p.name: p.read_text() for p in sorted((run / "results").glob("*.json"))}


def _steps(run):
    import torch

    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]


def _test_tracks(root):
    return json.loads((root / "manifest.json").read_text())["splits"]["test"]


def test_training_on_other_data_in_the_same_run_folder_is_refused(trained, tmp_path, copy_chorales):
    root, original = trained
    run = shutil.copytree(original, tmp_path / "run")
    track = _test_tracks(root)[0]
    other = copy_chorales(root, tmp_path / "other", change=track)
    before = {p.name: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    with pytest.raises(DataChangedError) as err:
        _train(run, other)
    msg = str(err.value)
    assert f"test: changed {track}" in msg and str(root) in msg and str(other) in msg
    assert "run_id=" in msg
    after = {p.name: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    assert after == before  # nothing trained, evaluated or rewritten


def test_moved_data_resumes_the_run_and_reuses_its_results(trained, tmp_path, copy_chorales):
    root, original = trained
    run = shutil.copytree(original, tmp_path / "run")
    summary = json.loads((run / "summary.json").read_text())
    moved = copy_chorales(root, tmp_path / "moved")
    steps = _steps(run)
    _train(run, moved)
    assert _steps(run) == steps  # resumed a finished run: no training
    assert _results(run) == _results(original)  # every test result reused, none recomputed
    again = json.loads((run / "summary.json").read_text())
    assert again["systems"] == summary["systems"] and again["data_digest"] == summary["data_digest"]
    assert again["data"] == str(moved) and summary["data"] == str(root)
    assert json.loads((run / "data.json").read_text())["root"] == str(moved)


def test_mb_eval_takes_data_roots_from_overrides_env_else_the_checkpoint(
    trained, tmp_path, copy_chorales, monkeypatch
):
    root, run = trained
    monkeypatch.chdir(tmp_path)  # elsewhere: the stored root was relative when training
    monkeypatch.delenv("CHORALES_ROOT", raising=False)
    stored = _evaluate(tmp_path / "e0", run)
    assert stored["data"] == str(root)
    assert stored["data_digest"] == json.loads((run / "summary.json").read_text())["data_digest"]

    other = copy_chorales(root, tmp_path / "other", change=_test_tracks(root)[0])
    by_override = _evaluate(tmp_path / "e1", run, f"paths.chorales_root={other}")
    assert by_override["data"] == str(other) and by_override["data_digest"] != stored["data_digest"]
    monkeypatch.setenv("CHORALES_ROOT", str(other))
    by_env = _evaluate(tmp_path / "e2", run)
    assert by_env["data"] == str(other) and by_env["data_digest"] == by_override["data_digest"]

    monkeypatch.setenv("CHORALES_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(MissingRootError) as err:
        _evaluate(tmp_path / "e3", run)
    msg = str(err.value)
    assert str(tmp_path / "nowhere") in msg
    assert "paths.chorales_root=/path/to/the/dataset or set $CHORALES_ROOT" in msg


def test_a_file_that_differs_from_the_manifest_stops_mb_train_and_mb_eval(trained, tmp_path, copy_chorales):
    root, run = trained
    track = _test_tracks(root)[0]
    bad = copy_chorales(root, tmp_path / "bad", change=track, update_manifest=False)
    with pytest.raises(DatasetError) as err:
        _train(tmp_path / "run", bad)
    msg = str(err.value)
    assert str(bad / "test" / track / "mixture.wav") in msg and f"mb-data verify --root {bad}" in msg
    assert not (tmp_path / "run" / "checkpoints").exists()
    with pytest.raises(DatasetError, match="mb-data verify"):
        _evaluate(tmp_path / "eval", run, f"paths.chorales_root={bad}")
    assert not (tmp_path / "eval" / "results").exists()
