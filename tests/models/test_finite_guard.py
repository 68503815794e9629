"""Training stops on a NaN loss or a NaN monitored metric, before a checkpoint of that state is written."""

import functools

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from musicbench.models.base import NonFiniteTrainingError, System


class Scale(System):
    """A learnt gain; its loss (or its validation metric) turns NaN from step ``nan_from`` on."""

    def __init__(self, nan_from: int | None = None, nan_metric: bool = False):
        super().__init__(optimizer=functools.partial(torch.optim.SGD, lr=0.1))
        self.gain = nn.Parameter(torch.tensor(0.5))
        self.nan_from, self.nan_metric = nan_from, nan_metric

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = (self.gain * x - x).square().mean()
        if self.nan_from is not None and self.global_step >= self.nan_from:
            loss = loss * float("nan")
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        value = float("nan") if self.nan_metric else -float((self.gain * x - x).square().mean())
        self.log("val/sdr", value, batch_size=x.shape[0])


def _fit(model, tmp_path):
    data = DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=2)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/sdr", mode="max", save_last=True)
    trainer = pl.Trainer(
        max_epochs=3,
        callbacks=[checkpoints],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    trainer.fit(model, train_dataloaders=data, val_dataloaders=data)
    return trainer


def _written(tmp_path):
    return sorted(p.name for p in (tmp_path / "ckpt").glob("*")) if (tmp_path / "ckpt").exists() else []


def test_nan_loss_stops_training_before_any_checkpoint(tmp_path):
    before = Scale().gain.detach().clone()
    model = Scale(nan_from=0)
    with pytest.raises(NonFiniteTrainingError, match=r"training loss is nan at step 0 \(epoch 0\)"):
        _fit(model, tmp_path)
    assert _written(tmp_path) == []
    assert torch.equal(model.gain.detach(), before)  # no optimizer step with a NaN gradient


def test_nan_loss_later_keeps_the_earlier_checkpoints_only(tmp_path):
    with pytest.raises(NonFiniteTrainingError, match="at step 5 "):
        _fit(Scale(nan_from=5), tmp_path)  # 4 steps per epoch: epoch 0 validated and saved, epoch 1 fails
    assert "nan" not in " ".join(_written(tmp_path)) and "last.ckpt" in _written(tmp_path)
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["global_step"] == 4


def test_nan_validation_metric_never_becomes_best(tmp_path):
    with pytest.raises(NonFiniteTrainingError, match="validation metric val/sdr is nan after epoch 0"):
        _fit(Scale(nan_metric=True), tmp_path)
    assert _written(tmp_path) == []


def test_finite_training_is_unchanged(tmp_path):
    trainer = _fit(Scale(), tmp_path)
    assert trainer.global_step == 12 and "last.ckpt" in _written(tmp_path)
