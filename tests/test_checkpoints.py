"""Checkpoints: resume, find, load (with configs of moved classes upgraded), the config callback."""

import logging
import os
import random

import numpy as np
import pytest
import torch

from musicbench.checkpoints import (
    CONFIG_KEY,
    RNG_KEY,
    CheckpointError,
    ConfigInCheckpoint,
    checkpoint_problem,
    config_changes,
    find_checkpoint,
    load_checkpoint,
    resume_checkpoint,
    resume_step,
    rng_states,
    set_rng_states,
    upgrade_config,
)


def _touch(path, mtime=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _ckpt(path, mtime=None, step=0):
    """A small readable training checkpoint (weights and the loop counter Lightning resumes with)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    loops = {"fit_loop": {"epoch_loop.state_dict": {"_batches_that_stepped": step}}}
    torch.save({"state_dict": {"w": torch.ones(3)}, "global_step": step, "loops": loops}, path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_resume_from_last_of_this_run_folder(tmp_path):
    assert resume_checkpoint(None, tmp_path) is None  # a fresh start
    with pytest.raises(FileNotFoundError, match="ckpt_path=last but .*last.ckpt does not exist"):
        resume_checkpoint("last", tmp_path)
    last = _ckpt(tmp_path / "checkpoints" / "last.ckpt", step=6)
    assert resume_checkpoint(None, tmp_path) == resume_checkpoint("last", tmp_path) == str(last)
    assert resume_step(last) == 6
    other = _ckpt(tmp_path / "elsewhere.ckpt")
    assert resume_checkpoint(str(other), tmp_path) == str(other)
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        resume_checkpoint(str(tmp_path / "missing.ckpt"), tmp_path)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_an_unreadable_last_ckpt_falls_back_to_the_newest_readable_one(tmp_path, caplog):
    ckpts = tmp_path / "checkpoints"
    _ckpt(ckpts / "epoch000-sdr1.00.ckpt", mtime=100)
    newer = _ckpt(ckpts / "epoch001-sdr2.00.ckpt", mtime=200)
    _truncate(_ckpt(ckpts / "epoch002-sdr3.00.ckpt", mtime=300))  # a write that was cut short
    _touch(ckpts / ".last.x1.tmp.ckpt", mtime=400)  # the temporary file of a killed write
    last = _ckpt(ckpts / "last.ckpt", mtime=500)
    assert checkpoint_problem(last) is None
    _truncate(last)
    assert "last.ckpt" not in (checkpoint_problem(last) or "")  # a reason, e.g. a zip error
    truncated = last.read_bytes()
    for ckpt_path in (None, "last"):
        last.write_bytes(truncated)
        with caplog.at_level(logging.WARNING, logger="musicbench.checkpoints"):
            assert resume_checkpoint(ckpt_path, tmp_path) == str(newer)
        assert f"{last} cannot be read" in caplog.text and str(newer) in caplog.text
        # Kept for inspection, out of the way of the next last.ckpt.
        assert not last.exists() and (ckpts / "last.ckpt.unreadable").read_bytes() == truncated
    # Nothing readable left: an error that names the file and says what to do.
    last.write_bytes(truncated)
    for p in ckpts.glob("epoch*.ckpt"):
        p.unlink()
    with pytest.raises(
        CheckpointError, match=r"last.ckpt cannot be read .* delete it to start this run afresh"
    ):
        resume_checkpoint(None, tmp_path)
    # A checkpoint given by path is not replaced by another one.
    with pytest.raises(CheckpointError, match=f"ckpt_path={last} cannot be read"):
        resume_checkpoint(str(last), tmp_path)
    torch.save({"weights": 1}, ckpts / "other.ckpt")
    assert "not a Lightning checkpoint" in checkpoint_problem(ckpts / "other.ckpt")


def test_rng_states_survive_a_weights_only_load_and_restore_the_draws(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    states = rng_states()
    torch.save({RNG_KEY: states}, tmp_path / "s.ckpt")
    expected = torch.rand(3), np.random.rand(3), random.random()
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    set_rng_states(torch.load(tmp_path / "s.ckpt", weights_only=True)[RNG_KEY])  # as Lightning loads
    again = torch.rand(3), np.random.rand(3), random.random()
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2]


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


def test_config_changes_name_the_model_data_and_seed_keys_that_differ():
    stored = {
        "seed": 1,
        "model": {"optimizer": {"lr": 1e-3}, "loss": {"_target_": "musicbench.models.adversarial.HingeLoss"}},
        "data": {"root": "/a", "source": {"clean_root": "/a"}, "num_workers": 0, "sources": ["s", "a"]},
        "trainer": {"max_epochs": 1},
    }
    same = {
        "seed": 1,
        # A moved class is the same class.
        "model": {"optimizer": {"lr": 1e-3}, "loss": {"_target_": "musicbench.models.losses.HingeLoss"}},
        # Where the files are and how they are loaded do not change the experiment, nor does the trainer.
        "data": {"root": "/b", "source": {"clean_root": "/b"}, "num_workers": 4, "sources": ["s", "a"]},
        "trainer": {"max_epochs": 9},
    }
    assert config_changes(stored, same) == []
    changed = {
        **same,
        "seed": 2,
        "model": {**same["model"], "optimizer": {"lr": 0.5}, "scheduler": None},
        "data": {**same["data"], "sources": ["a", "s"]},
    }
    assert config_changes(stored, changed) == [
        "data.sources: ['s', 'a'] -> ['a', 's']",
        "model.optimizer.lr: 0.001 -> 0.5",
        "model.scheduler: '<absent>' -> None",
        "seed: 1 -> 2",
    ]
