"""Fixtures of the CLI integration tests."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from musicbench.utils.config import CONFIG_DIR

# Overrides that shrink the MP3 restoration presets to seconds on a CPU (tiny chorale set, no progress bars).
TINY_MP3_RUN = [
    "trainer.max_epochs=2",
    "trainer.max_time=null",
    "trainer.log_every_n_steps=1",
    "data.chunk_seconds=0.5",
    "data.samples_per_epoch=8",
    "data.batch_size=4",
    "data.valid_segment_seconds=1.0",
    "data.prepare_workers=0",
    "data.progress=false",
    "evaluator.progress=false",
    "callbacks.progress_bar=null",
]


@pytest.fixture
def tiny_mp3_run() -> list[str]:
    """``mb-train`` overrides for a seconds-long run of a restoration preset (``TINY_MP3_RUN``)."""
    return list(TINY_MP3_RUN)


@pytest.fixture
def tiny_train_cfg(tiny_chorales_root):
    """Compose ``train.yaml`` on the tiny chorales: ``tiny_train_cfg(output_dir, *overrides, debug="tiny")``."""

    def compose_cfg(output_dir, *overrides, debug="tiny"):
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            return compose(
                "train",
                overrides=[
                    f"debug={debug}",
                    f"paths.output_dir={output_dir}",
                    f"paths.chorales_root={tiny_chorales_root}",
                    "callbacks.progress_bar=null",
                    *overrides,
                ],
            )

    return compose_cfg
