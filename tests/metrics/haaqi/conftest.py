"""Shared inputs of the HAAQI stage tests: music-like test signals, hearing losses, a relative error."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from musicbench.audio.testsignals import music_like

FS = 24000

LOSSES = {
    "normal": [0, 0, 0, 0, 0, 0],
    "mild": [10, 15, 20, 25, 30, 35],
    "severe": [60, 70, 80, 90, 95, 100],
    "cookie_bite": [10, 40, 60, 55, 30, 15],
}


def _music(seconds: float = 0.5, sample_rate: int = FS, seed: int = 0) -> np.ndarray:
    """A few harmonic notes with attack/decay envelopes plus a little noise (RMS ~0.1)."""
    return music_like(
        seconds, sample_rate, seed, notes=4, span=0.6, amplitude=0.05, harmonics=5, decay=3.0, noise=0.005
    )


def _rel(ours: torch.Tensor | np.ndarray, theirs: np.ndarray) -> float:
    """Max absolute difference relative to the reference's peak (shapes must match)."""
    ours = ours.numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-300))


@pytest.fixture
def music() -> Callable[..., np.ndarray]:
    """``music(seconds=0.5, sample_rate=24000, seed=0)``: a short music-like NumPy signal."""
    return _music


@pytest.fixture
def rel() -> Callable[[torch.Tensor | np.ndarray, np.ndarray], float]:
    """``rel(ours, theirs)``: max |difference| relative to ``theirs``' peak."""
    return _rel


@pytest.fixture
def losses() -> dict[str, list[int]]:
    """Audiograms (dB HL at 250 ... 6000 Hz) from normal to severe."""
    return LOSSES
