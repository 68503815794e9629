"""The CSV logger keeps a resumed run's history; resume_loggers drops the steps logged after a checkpoint."""

import csv
import logging

import pytest
from pytorch_lightning.loggers import TensorBoardLogger

from musicbench.utils.loggers import CSVLogger, resume_loggers


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _log(tmp_path, steps, **extra):
    logger = CSVLogger(tmp_path, name="csv", version="")
    for step in steps:
        logger.log_metrics({"train/loss": float(step), **extra}, step=step)
        logger.save()
    return logger


def test_a_new_logger_appends_to_the_existing_file(tmp_path):
    _log(tmp_path, [0, 1])
    logger = _log(tmp_path, [2], **{"val/sdr": 3.5})  # a new column: the file is rewritten, rows kept
    rows = _rows(logger.experiment.metrics_file_path)
    assert [r["step"] for r in rows] == ["0", "1", "2"]
    assert rows[2]["val/sdr"] == "3.5" and rows[0]["val/sdr"] == ""
    _log(tmp_path, [3])
    assert [r["step"] for r in _rows(logger.experiment.metrics_file_path)] == ["0", "1", "2", "3"]


def test_resume_loggers_drops_the_steps_after_the_checkpoint(tmp_path, caplog):
    path = _log(tmp_path, [0, 1, 2, 3]).experiment.metrics_file_path
    logger = CSVLogger(tmp_path, name="csv", version="")
    with caplog.at_level(logging.WARNING, logger="musicbench.utils.loggers"):
        resume_loggers([logger], step=2)
    assert [r["step"] for r in _rows(path)] == ["0", "1"]
    assert "dropped 2 row(s) logged at step >= 2" in caplog.text
    tensorboard = TensorBoardLogger(tmp_path, name="tb", version="")
    resume_loggers([tensorboard], step=2)
    assert tensorboard._kwargs["purge_step"] == 2  # TensorBoard hides the older events from step 2 on


def test_resume_loggers_needs_a_tensorboard_writer_not_yet_created(tmp_path):
    tensorboard = TensorBoardLogger(tmp_path, name="tb", version="")
    tensorboard.experiment  # noqa: B018  (creates the writer)
    with pytest.raises(RuntimeError, match="before the TensorBoard writer is created"):
        resume_loggers([tensorboard], step=2)
