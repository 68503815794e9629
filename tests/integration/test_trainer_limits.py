"""Integration: the trainer limits of conf/trainer/default.yaml, as a user sets them on the command line."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from musicbench.train import train
from musicbench.utils.config import CONFIG_DIR

pytestmark = pytest.mark.slow


def _cfg(tmp_path, chorales_root, *overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(
            "train",
            overrides=[
                "debug=tiny",
                f"paths.output_dir={tmp_path}",
                f"paths.chorales_root={chorales_root}",
                "callbacks.progress_bar=null",
                "test=false",
                *overrides,
            ],
        )


def test_max_steps_wins_over_the_debug_epochs(tmp_path, tiny_chorales_root):
    cfg = _cfg(tmp_path, tiny_chorales_root, "trainer.max_steps=5")
    epoch_steps = cfg.data.samples_per_epoch // cfg.data.batch_size
    assert cfg.trainer.max_epochs * epoch_steps < 5  # debug=tiny's epochs alone would stop earlier
    _, objects = train(cfg)
    assert objects["trainer"].global_step == 5
    saved = (tmp_path / "config.yaml").read_text()
    assert "max_steps: 5" in saved and "max_epochs: -1" in saved  # the folder records what ran


def test_limit_train_batches(tmp_path, tiny_chorales_root):
    cfg = _cfg(tmp_path, tiny_chorales_root, "trainer.limit_train_batches=1", "trainer.max_epochs=3")
    _, objects = train(cfg)
    assert objects["trainer"].global_step == 3  # one batch per epoch
