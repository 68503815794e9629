"""Synthetic music-like test signals for metric tests and benchmarks (no data download needed)."""

from __future__ import annotations

import numpy as np


def music_like(
    seconds: float,
    sample_rate: int,
    seed: int = 0,
    notes: int | None = None,
    span: float = 0.9,
    amplitude: float = 0.06,
    harmonics: int = 6,
    decay: float = 2.0,
    noise: float = 0.003,
) -> np.ndarray:
    """Harmonic notes with 25 ms attacks and exponential decays over a little white noise, ``(samples,)``.

    Args:
        seconds, sample_rate: duration (s) and rate (Hz); ``int(seconds * sample_rate)`` samples.
        seed: NumPy seed of the noise, pitches (110 ... 880 Hz) and phases.
        notes: number of notes (default 4 per second, at least 2), onsets evenly spread over the first
            ``span`` of the signal.
        amplitude: amplitude of each note's fundamental; harmonic ``h`` has ``amplitude / h``.
        harmonics: partials per note. decay: decay rate in 1/s. noise: white-noise standard deviation.

    RMS is ~0.1 for the defaults (about ``level1 - 20`` dB SPL in HAAQI's convention).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = noise * rng.standard_normal(len(t))
    n_notes = max(2, int(seconds * 4)) if notes is None else notes
    for f0, start in zip(
        rng.uniform(110, 880, n_notes), np.linspace(0, seconds * span, n_notes), strict=True
    ):
        env = np.clip((t - start) * 40, 0, 1) * np.exp(-np.clip(t - start, 0, None) * decay)
        for h in range(1, harmonics + 1):
            x += amplitude / h * env * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
    return x
