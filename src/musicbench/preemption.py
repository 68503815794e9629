"""Preemption: a training that is told to stop (SLURM preemption or requeue, a job's time limit) writes
``last.ckpt`` at the end of the batch it is in and exits; the same command run again (the requeued job)
resumes from there and ends exactly as an uninterrupted run would.

Who requeues: SLURM itself when it preempts or ``scontrol requeue``s a job (it sends SIGTERM, then kills
and queues the job again), submitit when its own signal arrives before the time limit (SIGUSR2 under the
``hydra/launcher=slurm`` launcher: it requeues the pickled job after this module has saved). Lightning's
own SLURM auto-requeue is switched off (:func:`cluster_plugins`), so nothing requeues a job twice.

Signals: SIGTERM is caught by Lightning (it stops every DDP rank at the same batch); the user signals
(SIGUSR1, SIGUSR2) are turned into that same stop here. When the training has stopped,
:class:`PreemptionCheckpoint` writes ``last.ckpt`` with a marker of the batch it stopped after; on
resume the marker tells the data module to skip the batches of that epoch already trained on
(:meth:`~musicbench.data.loading.ChunkDataModule.resume_within_epoch`) and the RNG states are
restored just before the next batch (:class:`~musicbench.checkpoints.RNGStateInCheckpoint`).
"""

from __future__ import annotations

import logging
import os
import signal
import warnings
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning.trainer.states import RunningStage
from pytorch_lightning.utilities.exceptions import SIGTERMException

from musicbench.checkpoints import LAST, PREEMPTED_KEY

log = logging.getLogger(__name__)

# Exit status of a run stopped by a signal: 128 + the signal's number, as a shell reports it.
_EXIT_BASE = 128

# The data module skips the trained batches itself (resume_within_epoch); Lightning cannot know that.
warnings.filterwarnings(
    "ignore", message=r"You're resuming from a checkpoint that ended before the epoch ended"
)


class Preempted(SystemExit):
    """Raised out of ``mb-train`` when a signal stopped the training after ``last.ckpt`` was written; the
    exit status is 128 + the signal number. Run the same command again (a requeued job does) to resume."""


class PreemptionCheckpoint(pl.Callback):
    """Writes ``last.ckpt`` when a stop signal ends the training, then exits (or hands over to submitit).

    Args:
        checkpoint_dir: folder of ``last.ckpt`` (the run folder's ``checkpoints/``).
        signals: names of the user signals that stop the training like SIGTERM does (default SIGUSR1,
            SIGUSR2: SLURM's ``--signal`` and submitit's preemption signal).
    """

    def __init__(self, checkpoint_dir: str | Path, signals: Iterable[str] = ("SIGUSR1", "SIGUSR2")) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.signals = [_signal(name) for name in signals]
        self._previous: dict[int, Any] = {}
        self._received: int | None = None
        self._handover: Any = None
        self._saved = False
        self._stop_at_epoch_start = False
        self._marker: dict[str, Any] | None = None

    # --- signals
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After Lightning has registered its SIGTERM handler (in Trainer._run), so ours come on top.
        self._received = None
        self._saved = False
        self._stop_at_epoch_start = False
        if not _in_main_thread():
            return
        for signum in self.signals:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.warning("received %s: stopping after this batch to write last.ckpt", signal.Signals(signum).name)
        self._received = signum
        self._handover = self._previous.get(signum)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Where Lightning's own mid-epoch checkpoints are written (its restart logic expects this point).
        # Every rank takes the same decision, so they all save (a collective) and stop at this batch.
        stop = self._received is not None or trainer.received_sigterm
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        if _batches_done(trainer) >= trainer.num_training_batches:
            # The epoch's last batch: its validation and end-of-epoch last.ckpt come first (the resume
            # point Lightning handles), then the training stops, at the next epoch's start. Lightning
            # would stop on SIGTERM right after this batch, before both: its flag waits until then.
            self._stop_at_epoch_start = True
            connector = getattr(trainer, "_signal_connector", None)
            if connector is not None and getattr(connector, "received_sigterm", False):
                self._received = self._received or int(signal.SIGTERM)
                connector.received_sigterm = False
            return
        # Lightning hands this batch's logged values to the loggers after this hook, which the stop skips:
        # hand them over now, so the metric history has the batch (the resumed run starts after it).
        connector = trainer._logger_connector
        connector.on_batch_end()
        connector.update_train_step_metrics()
        for logger in trainer.loggers:
            logger.save()
        self._save(trainer, in_batch_end=True)
        raise SIGTERMException

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._stop_at_epoch_start:
            if not _saved_at_this_step(trainer):
                self._save(trainer, in_batch_end=False)
            self._saved = True
            raise SIGTERMException

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException) or self._saved or _saved_at_this_step(trainer):
            return
        if trainer.state.stage != RunningStage.TRAINING:
            # Lightning stopped inside a validation pass: no checkpoint there resumes exactly, so the rerun
            # starts from the previous last.ckpt (an epoch end) and does this epoch again, the same way.
            log.warning("stopped during validation: the rerun resumes from the last end-of-epoch checkpoint")
            return
        # Lightning stopped between two training batches, before this callback saw the signal.
        self._save(trainer, in_batch_end=False)

    def exit(self, exception: SIGTERMException) -> Preempted:
        """After the training stopped on a signal (``last.ckpt`` written): hand over to the job's own
        handler of that signal if it had one (submitit: it requeues the job and exits), else return the
        :class:`Preempted` exit to raise."""
        signum = self._received or int(signal.SIGTERM)
        previous, self._handover = self._handover, None
        self._restore_handlers()
        if callable(previous):
            log.info("handing over to the job's %s handler (requeue)", signal.Signals(signum).name)
            previous(signum, None)
        return Preempted(_EXIT_BASE + signum)

    def _save(self, trainer: pl.Trainer, in_batch_end: bool) -> None:
        path = self.checkpoint_dir / LAST
        done = _batches_done(trainer)
        self._marker = {
            # Written in on_train_batch_end, before Lightning counts the batch as stepped (its restart
            # adds it back): the resumed run logs from the next step (checkpoints.resume_step).
            "in_batch_end": in_batch_end,
            "epoch": int(trainer.current_epoch),
            "batches_done": int(done),
            "epoch_end": bool(done >= trainer.num_training_batches),
        }
        try:
            trainer.save_checkpoint(path)
        finally:
            self._marker = None
        self._saved = True
        log.warning(
            "preempted at epoch %d after batch %d (step %d): wrote %s; run the same command again to resume",
            trainer.current_epoch,
            done,
            trainer.global_step,
            path,
        )

    def _restore_handlers(self) -> None:
        if _in_main_thread():
            for signum, handler in self._previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    # --- checkpoint contents
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        if self._marker is not None:
            checkpoint[PREEMPTED_KEY] = dict(self._marker)

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        marker = checkpoint.get(PREEMPTED_KEY)
        # After an epoch's last batch the next epoch starts whole: Lightning's own restart handles it.
        if marker is None or marker.get("epoch_end"):
            return
        datamodule = trainer.datamodule
        resume = getattr(datamodule, "resume_within_epoch", None)
        if resume is None:
            log.warning(
                "%s cannot skip the batches already trained in epoch %d: that epoch restarts from its first "
                "batch (the resumed run will differ from an uninterrupted one)",
                type(datamodule).__name__,
                marker["epoch"],
            )
            return
        resume(int(marker["epoch"]), int(marker["batches_done"]))


def cluster_plugins() -> list[Any]:
    """Lightning plugins for the cluster the run is on: under SLURM (``SLURM_NTASKS`` set: a batch job or
    ``srun``) its environment with Lightning's auto-requeue off, since SLURM or submitit requeue (see the
    module docstring); elsewhere none (Lightning picks the environment itself)."""
    if SLURMEnvironment.detect() and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive"):
        return [SLURMEnvironment(auto_requeue=False)]
    return []


def _batches_done(trainer: pl.Trainer) -> int:
    """Training batches done in the current epoch (in on_train_batch_end the running batch is processed,
    not yet completed)."""
    progress = trainer.fit_loop.epoch_loop.batch_progress.current
    return int(max(progress.processed, progress.completed))


def _saved_at_this_step(trainer: pl.Trainer) -> bool:
    """Whether the checkpoint callback has just written its checkpoints (last.ckpt) at this step."""
    callback = trainer.checkpoint_callback
    return callback is not None and getattr(callback, "_last_global_step_saved", -1) == trainer.global_step


def _signal(name: str) -> int:
    value = getattr(signal, name if name.startswith("SIG") else f"SIG{name}", None)
    if not isinstance(value, signal.Signals):
        raise ValueError(f"unknown signal {name!r}: use a name such as SIGUSR1")
    return int(value)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
