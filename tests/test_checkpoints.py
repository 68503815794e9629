"""Checkpoints: resume, find, load (with configs of moved classes upgraded), the config callback."""

import os

import pytest
import torch

from musicbench.checkpoints import (
    CONFIG_KEY,
    ConfigInCheckpoint,
    find_checkpoint,
    load_checkpoint,
    resume_checkpoint,
    upgrade_config,
)


def _touch(path, mtime=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_resume_from_last_of_this_run_folder(tmp_path):
    assert resume_checkpoint(None, tmp_path) is None  # a fresh start
    with pytest.raises(FileNotFoundError, match="ckpt_path=last but .*last.ckpt does not exist"):
        resume_checkpoint("last", tmp_path)
    last = _touch(tmp_path / "checkpoints" / "last.ckpt")
    assert resume_checkpoint(None, tmp_path) == resume_checkpoint("last", tmp_path) == str(last)
    other = _touch(tmp_path / "elsewhere.ckpt")
    assert resume_checkpoint(str(other), tmp_path) == str(other)
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        resume_checkpoint(str(tmp_path / "missing.ckpt"), tmp_path)


def test_find_the_newest_best_checkpoint_else_last(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="no such file or run folder"):
        find_checkpoint(run)
    last = _touch(run / "checkpoints" / "last.ckpt", mtime=300)
    assert find_checkpoint(run) == last
    _touch(run / "checkpoints" / "epoch001-sdr1.00.ckpt", mtime=100)
    newest = _touch(run / "checkpoints" / "epoch000-sdr2.00.ckpt", mtime=200)
    assert find_checkpoint(run) == newest == find_checkpoint(run / "checkpoints")
    assert find_checkpoint(last) == last
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no .ckpt file"):
        find_checkpoint(empty)


def test_the_callback_stores_the_config_and_load_reads_it(tmp_path):
    checkpoint = {"state_dict": {"w": torch.ones(2)}}
    ConfigInCheckpoint({"name": "run", "model": {"_target_": "x.Y"}}).on_save_checkpoint(
        None, None, checkpoint
    )
    torch.save(checkpoint, tmp_path / "a.ckpt")
    state, cfg = load_checkpoint(tmp_path / "a.ckpt")
    assert torch.equal(state["state_dict"]["w"], torch.ones(2))
    assert cfg.name == "run" and cfg.model._target_ == "x.Y"
    torch.save({"state_dict": {}}, tmp_path / "b.ckpt")
    with pytest.raises(ValueError, match=f"b.ckpt holds no '{CONFIG_KEY}'"):
        load_checkpoint(tmp_path / "b.ckpt")


def test_stored_configs_of_moved_classes_are_upgraded():
    stored = {
        "model": {"adversarial": {"_target_": "musicbench.models.adversarial.HingeLoss"}, "lr": [1, 2]},
        "evaluator": {"_target_": "musicbench.evaluation.runner.SeparationEvaluator", "baselines": ["input"]},
    }
    new = upgrade_config(stored)
    assert new["model"] == {"adversarial": {"_target_": "musicbench.models.losses.HingeLoss"}, "lr": [1, 2]}
    assert new["evaluator"] == {
        "_target_": "musicbench.evaluation.runner.Evaluator",
        "input_baseline": "input",
    }
    none = upgrade_config({"_target_": "musicbench.evaluation.runner.SeparationEvaluator", "baselines": []})
    assert none["input_baseline"] is None
    with pytest.raises(ValueError, match="one input baseline"):
        upgrade_config(
            {"_target_": "musicbench.evaluation.runner.Evaluator", "baselines": ["mixture", "input"]}
        )
