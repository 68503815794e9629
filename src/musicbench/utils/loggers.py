"""Loggers that keep a run's metric history when the run resumes.

Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when it starts, so every resume (a requeued
job, a rerun of a finished run, a failed resume) loses the history. :class:`CSVLogger` keeps the file and
appends to it; :func:`resume_loggers` drops the rows (CSV) or hides the events (TensorBoard's
``purge_step``) that were logged after the checkpoint a run resumes from, since the resumed run logs
those steps again.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable
from typing import Any

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger as _LightningCSVLogger
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from musicbench.utils.files import atomic_path

log = logging.getLogger(__name__)


class _HistoryWriter(ExperimentWriter):
    """Lightning's CSV writer, but an existing ``metrics.csv`` is kept and appended to, and rewrites
    (a new column, dropped rows) are atomic."""

    def _check_log_dir_exists(self) -> None:
        # Lightning deletes metrics.csv here; the history of a resumed run is kept instead.
        if os.path.isfile(self.metrics_file_path):
            self.metrics_keys = list(self._read()[0])

    def _read(self) -> tuple[list[str], list[dict[str, str]]]:
        with open(self.metrics_file_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            return list(reader.fieldnames or []), rows

    def _write(self, fieldnames: list[str], rows: Iterable[dict[str, Any]]) -> None:
        with atomic_path(self.metrics_file_path) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=fieldnames)
                writer.writeheader()
                writer.writerows(rows)

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        self._write(fieldnames, self._read()[1])

    def drop_from(self, step: int) -> int:
        """Remove the rows logged at ``step`` or later; returns how many were removed."""
        if not os.path.isfile(self.metrics_file_path):
            return 0
        fieldnames, rows = self._read()
        kept = [r for r in rows if not r.get("step") or int(float(r["step"])) < step]
        if len(kept) < len(rows):
            self._write(fieldnames, kept)
        return len(rows) - len(kept)


class CSVLogger(_LightningCSVLogger):
    """Lightning's ``CSVLogger`` (same arguments) that appends to an existing ``metrics.csv`` instead of
    deleting it: a resumed run keeps the rows of its earlier attempts."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _HistoryWriter:  # type: ignore[override]
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _HistoryWriter(log_dir=self.log_dir)
        return self._experiment

    @rank_zero_only
    def drop_from(self, step: int) -> int:
        """Remove the rows logged at ``step`` or later (see :meth:`_HistoryWriter.drop_from`)."""
        return self.experiment.drop_from(step)


def resume_loggers(loggers: Iterable[Any], step: int) -> None:
    """Prepare ``loggers`` for a run that continues after ``step`` logged steps (0: a fresh start).

    Call before training starts. What was logged at ``step`` or later belongs to training that the
    checkpoint does not hold, and the run logs those steps again: :class:`CSVLogger` drops those rows
    (with a warning); a ``TensorBoardLogger`` writes with ``purge_step=step``, so TensorBoard hides the
    older events from that step on. Other loggers are left as they are.
    """
    for logger in loggers:
        if isinstance(logger, CSVLogger):
            dropped = logger.drop_from(step)
            if dropped:
                log.warning(
                    "%s: dropped %d row(s) logged at step >= %d, after the checkpoint this run resumes "
                    "from (those steps are trained and logged again)",
                    logger.experiment.metrics_file_path,
                    dropped,
                    step,
                )
        elif isinstance(logger, TensorBoardLogger) and step > 0:
            if logger._experiment is not None:
                raise RuntimeError("resume_loggers must be called before the TensorBoard writer is created")
            logger._kwargs["purge_step"] = step  # passed on to torch's SummaryWriter


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger`` (same arguments; keys it does not know go to ``wandb.init``) that keeps
    W&B quiet and local unless told otherwise: no console messages (``WANDB_SILENT``) and no error reports
    sent to W&B's crash tracker (``WANDB_ERROR_REPORTING``), which only environment variables control.
    Either variable set in the environment wins."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        os.environ.setdefault("WANDB_SILENT", "true")
        os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:  # Lightning passes None, which W&B warns about
            del self._wandb_init["anonymous"]


def close_loggers(loggers: Iterable[Any], status: str = "success") -> None:
    """End every logger's run: ``finalize(status)`` (``"success"`` or ``"failed"``), and for W&B also end
    its run (``finish``), which Lightning's ``WandbLogger`` leaves open until the process exits: a later
    run in the same process (a sweep's next job) would continue it, and an offline run's files would be
    complete only at exit."""
    for logger in loggers:
        logger.finalize(status)
        if isinstance(logger, _LightningWandbLogger) and logger._experiment is not None:
            logger._experiment.finish(exit_code=0 if status == "success" else 1)
            logger._experiment = None
