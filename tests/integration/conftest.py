"""Fixtures of the CLI integration tests."""

from __future__ import annotations

import pytest

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
