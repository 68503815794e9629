"""Integration: the trainer limits of conf/trainer/default.yaml, as a user sets them on the command line."""

import pytest

from musicbench.train import train

pytestmark = pytest.mark.slow


def test_max_steps_wins_over_the_debug_epochs(tmp_path, tiny_train_cfg):
    cfg = tiny_train_cfg(tmp_path, "test=false", "trainer.max_steps=5")
    epoch_steps = cfg.data.samples_per_epoch // cfg.data.batch_size
    assert cfg.trainer.max_epochs * epoch_steps < 5  # debug=tiny's epochs alone would stop earlier
    _, objects = train(cfg)
    assert objects["trainer"].global_step == 5
    saved = (tmp_path / "config.yaml").read_text()
    assert "max_steps: 5" in saved and "max_epochs: -1" in saved  # the folder records what ran


def test_limit_train_batches(tmp_path, tiny_train_cfg):
    cfg = tiny_train_cfg(tmp_path, "test=false", "trainer.limit_train_batches=1", "trainer.max_epochs=3")
    _, objects = train(cfg)
    assert objects["trainer"].global_step == 3  # one batch per epoch
