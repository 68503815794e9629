"""Integration: a training stopped by a preemption signal (SIGTERM as SLURM sends it, SIGUSR1 as
``--signal`` does) in the middle of an epoch writes last.ckpt at the end of its batch and exits with
128 + the signal number; the same command resumes there and ends bit for bit as an uninterrupted run."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from musicbench.checkpoints import PREEMPTED_KEY, resume_step

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
# 8 batches per epoch (32 items, batches of 4), 2 epochs: the signal lands in the second epoch.
STEPS_PER_EPOCH = 8
ARGS = [
    "debug=tiny",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "data.samples_per_epoch=32",
    "data.batch_size=4",
    "callbacks.progress_bar=null",
]


def _cmd(chorales_root: Path, output_root: Path) -> list[str]:
    return [
        str(BIN / "mb-train"),
        *ARGS,
        f"paths.chorales_root={chorales_root}",
        f"paths.output_root={output_root}",
    ]


def _logged_steps(metrics_csv: Path) -> list[int]:
    if not metrics_csv.is_file():
        return []
    with open(metrics_csv, newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row.get("step")]


def _final_state(run: Path) -> tuple[dict, dict, str]:
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    summary = json.loads((run / "summary.json").read_text())
    return ckpt["state_dict"], summary["systems"], (run / "csv" / "metrics.csv").read_text()


@pytest.fixture(scope="module")
def uninterrupted(tiny_chorales_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    subprocess.run(_cmd(tiny_chorales_root, out), check=True, cwd=out, capture_output=True)
    (run,) = out.glob("train/default/*")
    return _final_state(run)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_signal_mid_epoch_saves_and_the_rerun_ends_as_an_uninterrupted_run(
    signum, uninterrupted, tiny_chorales_root, tmp_path
):
    proc = subprocess.Popen(
        _cmd(tiny_chorales_root, tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            runs = list(tmp_path.glob("train/default/*"))
            if (
                runs
                and max(_logged_steps(runs[0] / "csv" / "metrics.csv"), default=-1) >= STEPS_PER_EPOCH + 1
            ):
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before the signal"
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, output[-3000:]
    (run,) = tmp_path.glob("train/default/*")
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    stop = state[PREEMPTED_KEY]
    # Stopped inside the second epoch, after the batch that was running, with that batch saved.
    assert stop["epoch"] == 1 and 1 <= stop["batches_done"] < STEPS_PER_EPOCH, stop
    assert state["global_step"] == STEPS_PER_EPOCH + stop["batches_done"]
    assert "preempted at epoch 1" in output
    assert not (run / "summary.json").exists()

    # The same command resumes after that batch and ends where the uninterrupted run did.
    subprocess.run(_cmd(tiny_chorales_root, tmp_path), check=True, cwd=tmp_path, capture_output=True)
    weights, systems, metrics_csv = _final_state(run)
    ref_weights, ref_systems, ref_csv = uninterrupted
    assert weights.keys() == ref_weights.keys()
    assert all(torch.equal(weights[k], ref_weights[k]) for k in weights)
    assert systems == ref_systems
    assert metrics_csv == ref_csv


def test_a_job_handler_of_the_signal_gets_it_after_last_ckpt_is_written(tmp_path, tiny_train_cfg):
    """Under submitit, SIGUSR2 belongs to its requeue handler: the training first stops and writes
    last.ckpt, then hands the signal over (submitit then requeues the job and exits)."""
    from musicbench.preemption import Preempted
    from musicbench.train import train

    last = tmp_path / "checkpoints" / "last.ckpt"
    handed_over: list[tuple[int, bool]] = []

    def job_handler(signum, frame):
        handed_over.append((signum, last.is_file()))

    class SignalAtBatch(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 3:
                os.kill(os.getpid(), signal.SIGUSR2)

    previous = signal.signal(signal.SIGUSR2, job_handler)
    try:
        cfg = tiny_train_cfg(tmp_path, "test=false")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("musicbench.train.instantiate_dict", _with(SignalAtBatch()))
            with pytest.raises(Preempted) as exc:
                train(cfg)
        assert signal.getsignal(signal.SIGUSR2) is job_handler  # the job's handler is back in place
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert exc.value.code == 128 + signal.SIGUSR2
    assert handed_over == [(signal.SIGUSR2, True)]
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert state["global_step"] == 3 and state[PREEMPTED_KEY] == {
        "epoch": 1,
        "in_batch_end": True,
        "batches_done": 1,
        "epoch_end": False,
    }
    assert resume_step(last) == 3  # the rerun logs from the step after the saved batch


def _with(extra):
    from musicbench.utils.instantiate import instantiate_dict

    def instantiate_with_extra(cfg, group):
        built = instantiate_dict(cfg, group)
        return [*built, extra] if group == "callbacks" else built

    return instantiate_with_extra


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_signal_at_the_last_batch_of_an_epoch_resumes_from_the_end_of_epoch_checkpoint(
    signum, tmp_path, tiny_train_cfg
):
    """Stopped on an epoch's last batch, the run first validates and writes its end-of-epoch last.ckpt,
    stops there, and the rerun ends as an uninterrupted run (2 batches per epoch, signal at step 2)."""
    from musicbench.preemption import Preempted
    from musicbench.train import train

    common = ("test=false", "trainer.max_epochs=3")
    train(tiny_train_cfg(tmp_path / "ref", *common))

    class SignalAtBatch(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 2:
                os.kill(os.getpid(), signum)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("musicbench.train.instantiate_dict", _with(SignalAtBatch()))
        with pytest.raises(Preempted) as exc:
            train(tiny_train_cfg(tmp_path / "run", *common))
    assert exc.value.code == 128 + signum
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert state["global_step"] == 2 and PREEMPTED_KEY not in state  # the end-of-epoch checkpoint
    metrics = (tmp_path / "run" / "csv" / "metrics.csv").read_text()
    assert "val/sdr" in metrics.splitlines()[0] and len(metrics.splitlines()) > 2  # epoch 0 validated

    train(tiny_train_cfg(tmp_path / "run", *common))
    ref = torch.load(tmp_path / "ref" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    new = torch.load(last, map_location="cpu", weights_only=False)
    assert all(torch.equal(new["state_dict"][k], v) for k, v in ref["state_dict"].items())
    assert (tmp_path / "run" / "csv" / "metrics.csv").read_text() == (
        tmp_path / "ref" / "csv" / "metrics.csv"
    ).read_text()
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == sorted(
        p.name for p in (tmp_path / "ref" / "checkpoints").iterdir()
    )
