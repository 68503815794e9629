"""Source-level augmentations for separation training (as in Open-Unmix and Demucs).

They act on the stacked targets ``(S, C, T)`` (sources, channels, samples), each source independently, so
that the training mixture can be recomputed as the sum of the augmented sources afterwards. Randomness
comes from an explicit ``numpy.random.Generator`` so that a dataset item is a pure function of its seed.

Configs build them as transforms (:class:`RandomGain`, :class:`ChannelSwap`), one ``_target_`` node each
under ``data.augmentations``; a transform is a callable ``(targets, rng) -> targets``, applied in the order
of the config, and each draws from the item's generator in that order.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from musicbench.errors import ConfigError


def random_gain(targets: Tensor, rng: np.random.Generator, low_db: float, high_db: float) -> Tensor:
    """Scale each source by its own gain drawn uniformly in dB from ``[low_db, high_db]``.

    Uniform in dB (not in linear amplitude) so that attenuations and boosts are equally likely per dB.

    Args:
        targets: ``(S, C, T)`` sources.
        rng: the item's generator; draws ``S`` values.
        low_db, high_db: gain range in dB (``low_db <= high_db``).

    Returns:
        ``(S, C, T)`` scaled sources (a new tensor).
    """
    if low_db > high_db:
        raise ValueError(f"random_gain: low_db ({low_db}) must be <= high_db ({high_db})")
    gains_db = rng.uniform(low_db, high_db, size=targets.shape[0])
    gains = torch.from_numpy(10.0 ** (gains_db / 20.0)).to(targets.dtype)
    return targets * gains[:, None, None]


def random_channel_swap(targets: Tensor, rng: np.random.Generator, p: float = 0.5) -> Tensor:
    """Swap left and right of each source independently with probability ``p``.

    Sources with other than 2 channels are returned unchanged (there is no left/right to swap), but the
    generator still draws ``S`` values so that later draws do not depend on the channel count.

    Args:
        targets: ``(S, C, T)`` sources.
        rng: the item's generator; draws ``S`` values.
        p: probability of swapping each source.

    Returns:
        ``(S, C, T)`` sources (a new tensor).
    """
    swap = rng.random(targets.shape[0]) < p
    if targets.shape[1] != 2 or not swap.any():
        return targets.clone()
    out = targets.clone()
    idx = torch.from_numpy(np.flatnonzero(swap))
    out[idx] = targets[idx].flip(1)
    return out


class Transform(Protocol):
    """A source-level augmentation: ``(targets (S, C, T), rng) -> (S, C, T)``, drawing only from ``rng``."""

    def __call__(self, targets: Tensor, rng: np.random.Generator) -> Tensor: ...


class RandomGain:
    """Scale each source by a gain drawn uniformly in ``[low_db, high_db]`` dB (:func:`random_gain`)."""

    def __init__(self, low_db: float = -6.0, high_db: float = 3.0) -> None:
        self.low_db, self.high_db = float(low_db), float(high_db)
        if self.low_db > self.high_db:
            raise ConfigError(
                f"RandomGain needs low_db <= high_db (dB), got low_db={low_db}, high_db={high_db} "
                "(data.augmentations.<name>.low_db/high_db)"
            )

    def __call__(self, targets: Tensor, rng: np.random.Generator) -> Tensor:
        return random_gain(targets, rng, self.low_db, self.high_db)

    def __repr__(self) -> str:
        return f"RandomGain(low_db={self.low_db}, high_db={self.high_db})"


class ChannelSwap:
    """Swap left and right of each source with probability ``p`` (:func:`random_channel_swap`)."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(
                f"ChannelSwap needs a probability p in [0, 1], got {p!r} (data.augmentations.<name>.p)"
            )
        self.p = float(p)

    def __call__(self, targets: Tensor, rng: np.random.Generator) -> Tensor:
        return random_channel_swap(targets, rng, self.p)

    def __repr__(self) -> str:
        return f"ChannelSwap(p={self.p})"


def is_silent(audio: Tensor, threshold_db: float) -> bool:
    """Whether the mean power of ``audio`` (any shape, full scale = 1.0) is below ``threshold_db`` dBFS."""
    power = float(audio.double().pow(2).mean()) if audio.numel() else 0.0
    return power <= 10.0 ** (threshold_db / 10.0)
