"""Checkpoint writes: atomic, read back, and a failure that raises and leaves no partial file."""

import errno

import pytest
import torch

from musicbench import checkpoint_io
from musicbench.checkpoint_io import AtomicCheckpointIO, check_writable
from musicbench.checkpoints import checkpoint_problem
from musicbench.errors import CheckpointError


def _state(value: float) -> dict:
    return {"state_dict": {"w": torch.full((1000,), value)}}


def test_a_checkpoint_is_written_whole_and_replaces_the_previous_one(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint(_state(1.0), path)
    io.save_checkpoint(_state(2.0), path)
    assert checkpoint_problem(path) is None
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.full((1000,), 2.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary file left


def test_a_write_that_fails_midway_raises_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint(_state(1.0), path)
    before = path.read_bytes()

    def disk_full(obj, f):  # half the bytes reach the disk, then it is full
        f.write(b"PK\x03\x04" + b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_io.torch, "save", disk_full)
    with pytest.raises(
        CheckpointError, match=r"could not write checkpoint .*last.ckpt: No space left on device"
    ):
        io.save_checkpoint(_state(2.0), path)
    with pytest.raises(CheckpointError, match="epoch001.ckpt"):
        io.save_checkpoint(_state(2.0), tmp_path / "epoch001.ckpt")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no truncated file under any name


def test_a_checkpoint_that_does_not_load_back_is_not_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_io.torch, "save", lambda obj, f: f.write(b"not a zip"))
    with pytest.raises(CheckpointError, match="did not load back"):
        AtomicCheckpointIO().save_checkpoint(_state(1.0), tmp_path / "last.ckpt")
    assert list(tmp_path.iterdir()) == []


def test_check_writable(tmp_path):
    check_writable(tmp_path / "new" / "checkpoints")  # created
    stale = tmp_path / "new" / "checkpoints" / ".last.abc.tmp.ckpt"
    stale.write_bytes(b"partial")
    check_writable(tmp_path / "new" / "checkpoints")
    assert not stale.exists()  # left by a killed write: removed
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match=f"checkpoint folder {tmp_path / 'file'} is not writable"):
        check_writable(tmp_path / "file")
