"""Writing checkpoints: atomically, verified, and loudly when it fails.

Lightning writes a checkpoint straight to its final name, so a full disk leaves a truncated file there
(and a later resume fails on it), and its ``ModelCheckpoint`` writes ``last.ckpt`` at the end of a
``fast_dev_run``. Here every checkpoint is written to a temporary file in the same folder, read back, and
only then renamed onto its name (:class:`AtomicCheckpointIO`); a failed write raises
:class:`~musicbench.errors.CheckpointError` and leaves the previous file as it was.
:class:`ModelCheckpoint` checks that its folder is writable before training starts and writes nothing
under ``fast_dev_run``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from musicbench.checkpoints import checkpoint_problem
from musicbench.errors import CheckpointError
from musicbench.utils.files import atomic_path

log = logging.getLogger(__name__)

# What the temporary file of a checkpoint write is called (see utils.files.atomic_path): a write that
# was killed leaves one behind.
TEMP_GLOB = ".*.tmp.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, but a checkpoint appears under its name only once it is complete
    on disk and loads back; any failure (disk full, no permission, unreadable result) raises
    :class:`CheckpointError` naming the file, and no partial file is left under that name."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        try:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    torch.save(checkpoint, f)
                    f.flush()
                    os.fsync(f.fileno())  # on disk before it replaces the previous checkpoint
                problem = checkpoint_problem(tmp)
                if problem is not None:
                    raise CheckpointError(f"checkpoint {path} did not load back after writing ({problem})")
        except OSError as exc:
            raise CheckpointError(
                f"could not write checkpoint {path}: {exc.strerror or exc} (disk full? folder not writable?); "
                f"the previous checkpoints in {path.parent} are unchanged. Free space or fix the folder, "
                "then run the same command again: it resumes from the last good checkpoint"
            ) from exc


def check_writable(folder: str | Path) -> None:
    """Create ``folder`` if needed and check that a file can be created in it; raise
    :class:`CheckpointError` naming it otherwise. Temporary files of killed checkpoint writes are removed."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint folder {folder} is not writable ({exc.strerror or exc}): fix its permissions or "
            "free space, or write the run elsewhere (paths.output_root=...)"
        ) from exc
    for stale in folder.glob(TEMP_GLOB):
        log.info("removing %s, left by an interrupted checkpoint write", stale)
        stale.unlink(missing_ok=True)


class ModelCheckpoint(pl.callbacks.ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (same arguments) that checks its folder is writable when training
    starts (not after the first epoch), writes nothing under ``fast_dev_run``, and keeps ``last.ckpt`` the
    latest state: after every validation and when training ends.

    Lightning's ``save_last=True`` writes ``last.ckpt`` only when a best checkpoint is written, so it is
    the last *improved* epoch: a run that stopped improving, then crashed or ended by ``trainer.max_time``
    in mid-epoch, resumed from there and trained those epochs again (a finished time-limited run that is
    started again retrained its last minutes). Now the same command resumes from where the run ended,
    and a finished run finds its time used up and trains nothing.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and not trainer.fast_dev_run and trainer.is_global_zero and self.dirpath:
            check_writable(self.dirpath)

    # In the hook where Lightning itself saves (the end of the training epoch when validation runs once
    # per epoch, else the end of validation), after its best checkpoint: saving earlier would mark the
    # step as saved and skip that best checkpoint.
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_behind(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_behind(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning's version writes last.ckpt here even under fast_dev_run.
        if not trainer.fast_dev_run:
            super().on_train_end(trainer, pl_module)
            self._save_last_if_behind(trainer)

    def _save_last_if_behind(self, trainer: pl.Trainer) -> None:
        """Write ``last.ckpt`` unless the current step is saved already (or saving is off: fast_dev_run,
        the sanity check, outside fit)."""
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
