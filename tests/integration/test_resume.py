"""Integration: a training killed with SIGKILL and run again ends exactly as an uninterrupted one, and
keeps its metric history; checkpoints that cannot be written or read fail loudly."""

import csv
import errno
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from musicbench import checkpoint_io
from musicbench.checkpoints import checkpoint_problem, resume_step
from musicbench.errors import CheckpointError, ConfigError
from musicbench.train import train

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
# 4 steps per epoch (16 items, batches of 4), 3 epochs; last.ckpt is written at the end of each epoch.
STEPS_PER_EPOCH = 4
ARGS = [
    "debug=tiny",
    "trainer.max_epochs=3",
    "data.samples_per_epoch=16",
    "callbacks.progress_bar=null",
]


def _cmd(chorales_root: Path, output_root: Path) -> list[str]:
    return [
        str(BIN / "mb-train"),
        *ARGS,
        f"paths.chorales_root={chorales_root}",
        f"paths.output_root={output_root}",
    ]


def _run_folder(output_root: Path) -> Path:
    (run,) = output_root.glob("train/default/*")
    return run


def _logged_steps(metrics_csv: Path) -> list[int]:
    if not metrics_csv.is_file():
        return []
    with open(metrics_csv, newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row.get("step")]


def _final_state(run: Path) -> tuple[dict, dict, str]:
    weights = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "state_dict"
    ]
    summary = json.loads((run / "summary.json").read_text())
    return weights, summary["systems"], (run / "csv" / "metrics.csv").read_text()


def test_sigkill_mid_epoch_then_rerun_ends_as_an_uninterrupted_run(tmp_path, tiny_chorales_root):
    reference = tmp_path / "uninterrupted"
    subprocess.run(_cmd(tiny_chorales_root, reference), check=True, cwd=tmp_path, capture_output=True)
    ref_weights, ref_systems, ref_csv = _final_state(_run_folder(reference))

    # Kill -9 in the second epoch, after the checkpoint of the first epoch and a logged step past it.
    interrupted = tmp_path / "interrupted"
    proc = subprocess.Popen(
        _cmd(tiny_chorales_root, interrupted),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            runs = list(interrupted.glob("train/default/*"))
            if runs and max(_logged_steps(runs[0] / "csv" / "metrics.csv"), default=-1) > STEPS_PER_EPOCH:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed mid-epoch"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    run = _run_folder(interrupted)
    last = run / "checkpoints" / "last.ckpt"
    steps_before = _logged_steps(run / "csv" / "metrics.csv")
    assert resume_step(last) == STEPS_PER_EPOCH  # the end of the first epoch
    assert max(steps_before) > STEPS_PER_EPOCH  # it died after logging steps that last.ckpt does not hold
    assert not (run / "summary.json").exists()

    # The same command again resumes from last.ckpt and ends bit for bit where the uninterrupted run did,
    # with the same metric history (rows before the kill kept, the steps after the checkpoint not twice).
    subprocess.run(_cmd(tiny_chorales_root, interrupted), check=True, cwd=tmp_path, capture_output=True)
    weights, systems, metrics_csv = _final_state(run)
    assert weights.keys() == ref_weights.keys()
    assert all(torch.equal(weights[k], ref_weights[k]) for k in weights)
    assert systems == ref_systems
    assert metrics_csv == ref_csv
    assert set(steps_before) <= set(_logged_steps(run / "csv" / "metrics.csv"))

    # Rerunning the finished run trains nothing more and keeps the history.
    subprocess.run(_cmd(tiny_chorales_root, interrupted), check=True, cwd=tmp_path, capture_output=True)
    assert (run / "csv" / "metrics.csv").read_text() == ref_csv


def test_unwritable_checkpoint_folder_fails_before_training(tmp_path, tiny_chorales_root):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").write_text("a file where the checkpoint folder should be")
    cmd = [*_cmd(tiny_chorales_root, tmp_path / "out"), f"hydra.run.dir={run}"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0
    assert f"checkpoint folder {run / 'checkpoints'} is not writable" in out.stderr + out.stdout
    assert not (run / "csv" / "metrics.csv").exists()  # it stopped before the first step
    assert not (run / "summary.json").exists()


def test_a_full_disk_fails_the_run_and_leaves_no_truncated_checkpoint(tmp_path, tiny_train_cfg, monkeypatch):
    train(tiny_train_cfg(tmp_path, "test=false", "trainer.max_epochs=1"))
    ckpts = tmp_path / "checkpoints"
    before = {p.name: p.read_bytes() for p in ckpts.iterdir()}

    def disk_full(obj, f):
        f.write(b"PK\x03\x04" + b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_io.torch, "save", disk_full)
    with pytest.raises(CheckpointError, match="No space left on device"):
        train(tiny_train_cfg(tmp_path, "test=false", "trainer.max_epochs=2"))
    assert {p.name: p.read_bytes() for p in ckpts.iterdir()} == before  # the epoch-0 checkpoints, intact


def test_a_truncated_last_ckpt_resumes_from_the_best_checkpoint(tmp_path, tiny_train_cfg, caplog):
    train(tiny_train_cfg(tmp_path, "test=false", "trainer.max_epochs=1"))
    last = tmp_path / "checkpoints" / "last.ckpt"
    (best,) = [p for p in (tmp_path / "checkpoints").glob("epoch*.ckpt")]
    last.write_bytes(last.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="musicbench.checkpoints"):
        _, objects = train(tiny_train_cfg(tmp_path, "test=false", "trainer.max_epochs=2"))
    assert f"{last} cannot be read" in caplog.text and f"resuming from {best}" in caplog.text
    assert objects["trainer"].current_epoch == 2 and checkpoint_problem(last) is None
    assert torch.load(last, weights_only=False)["epoch"] == 1  # the new last.ckpt, of the second epoch
    assert not list((tmp_path / "checkpoints").glob("last-v*.ckpt"))


def test_fast_dev_run_writes_no_checkpoint_and_does_not_resume(tmp_path, tiny_train_cfg):
    _, objects = train(tiny_train_cfg(tmp_path, "test=false", "data.num_workers=0", debug="fdr"))
    assert objects["trainer"].global_step == 1
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").iterdir())
    # A run folder with a last.ckpt: fast_dev_run neither resumes from it (it trains its one batch from
    # step 0) nor touches it.
    train(tiny_train_cfg(tmp_path, "test=false", "trainer.max_epochs=1"))
    last = tmp_path / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    _, objects = train(tiny_train_cfg(tmp_path, "test=false", "data.num_workers=0", debug="fdr"))
    assert objects["trainer"].global_step == 1
    assert last.read_bytes() == before


def test_a_resume_with_dataloader_workers_matches_an_uninterrupted_run(tmp_path, tiny_train_cfg):
    """Workers kept between epochs (persistent) draw no new base seed at an epoch start; the resumed run
    accounts for that too."""
    common = ("data.num_workers=1", "trainer.max_epochs=2")
    reference, _ = train(tiny_train_cfg(tmp_path / "a", "test=false", *common))
    train(tiny_train_cfg(tmp_path / "b", "test=false", "data.num_workers=1", "trainer.max_epochs=1"))
    resumed, objects = train(tiny_train_cfg(tmp_path / "b", "test=false", *common))
    assert objects["trainer"].train_dataloader.persistent_workers
    assert resumed["val/sdr"] == reference["val/sdr"] and resumed["train/loss"] == reference["train/loss"]


def test_a_run_ended_in_mid_epoch_keeps_its_last_state_and_is_not_trained_again(tmp_path, tiny_train_cfg):
    """last.ckpt is the state training ended in, not the last improved epoch: run again, a run that ended
    inside an epoch (here by max_steps, as trainer.max_time does) trains nothing."""
    args = (
        "test=false",
        "trainer.max_epochs=10",
        f"trainer.max_steps={STEPS_PER_EPOCH + 2}",
        "data.samples_per_epoch=16",
    )
    _, objects = train(tiny_train_cfg(tmp_path, *args))
    steps = objects["trainer"].global_step
    assert steps == STEPS_PER_EPOCH + 2
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert resume_step(last) == steps  # not STEPS_PER_EPOCH, the end of the last validated epoch
    history = (tmp_path / "csv" / "metrics.csv").read_text()
    _, again = train(tiny_train_cfg(tmp_path, *args))
    assert again["trainer"].global_step == steps
    assert (tmp_path / "csv" / "metrics.csv").read_text() == history


def test_a_run_folder_is_not_resumed_with_another_model_or_data_config(tmp_path, tiny_train_cfg):
    """The same command finds the same run folder; after a config default changed (here: set on the
    composed config, as a changed default would), continuing its run is refused before anything is
    written. More epochs and another loader setting resume."""
    train(tiny_train_cfg(tmp_path, "test=false", "trainer.max_epochs=1"))
    last = tmp_path / "checkpoints" / "last.ckpt"
    before, config = last.read_bytes(), (tmp_path / "config.yaml").read_text()
    cfg = tiny_train_cfg(tmp_path, "test=false", "trainer.max_epochs=2")
    cfg.model.optimizer.lr = 0.5
    cfg.data.remix_prob = 0.0
    with pytest.raises(ConfigError) as err:
        train(cfg)
    message = str(err.value)
    assert str(tmp_path) in message and "2 setting(s) differ" in message
    assert "model.optimizer.lr: 0.001 -> 0.5" in message and "data.remix_prob: 0.5 -> 0.0" in message
    assert "run_id=" in message and f"ckpt_path={last}" in message
    assert last.read_bytes() == before and (tmp_path / "config.yaml").read_text() == config

    _, objects = train(tiny_train_cfg(tmp_path, "test=false", "trainer.max_epochs=2", "data.num_workers=1"))
    assert objects["trainer"].current_epoch == 2
    # ckpt_path=<file>: resumed on purpose, with the new settings.
    cfg = tiny_train_cfg(tmp_path / "b", "test=false", "trainer.max_epochs=3", f"ckpt_path={last}")
    cfg.model.optimizer.lr = 0.5
    _, objects = train(cfg)
    assert objects["trainer"].current_epoch == 3
