"""Source-level augmentations: gain, channel swap (as functions and as config transforms), silence detection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicbench.data.augment import ChannelSwap, RandomGain, is_silent, random_channel_swap, random_gain


def sources(num: int = 4, channels: int = 2, frames: int = 100) -> torch.Tensor:
    """(S, C, T) with left = s + 1, right = -(s + 1): each source and channel identifiable."""
    base = torch.arange(1, num + 1, dtype=torch.float32)[:, None, None].expand(num, channels, frames).clone()
    if channels == 2:
        base[:, 1] *= -1
    return base


def test_random_gain_range_and_independence() -> None:
    x = sources(num=64)
    y = random_gain(x, np.random.default_rng(0), -6.0, 3.0)
    assert y.shape == x.shape and y.dtype == torch.float32
    ratio = y / x
    # One gain per source, the same for all channels and samples.
    assert torch.allclose(ratio, ratio[:, :1, :1].expand_as(ratio))
    gains_db = 20 * torch.log10(ratio[:, 0, 0])
    assert gains_db.min() >= -6.0 - 1e-4 and gains_db.max() <= 3.0 + 1e-4
    assert gains_db.std() > 1.0  # spread over the range, not one shared value
    assert torch.equal(x, sources(num=64))  # the input is not modified


def test_random_gain_is_reproducible_and_checks_range() -> None:
    x = sources()
    a = random_gain(x, np.random.default_rng(3), -6.0, 3.0)
    b = random_gain(x, np.random.default_rng(3), -6.0, 3.0)
    assert torch.equal(a, b)
    assert torch.equal(random_gain(x, np.random.default_rng(0), 2.0, 2.0), x * 10 ** (2.0 / 20))
    with pytest.raises(ValueError, match="low_db"):
        random_gain(x, np.random.default_rng(0), 3.0, -6.0)


def test_channel_swap_per_source() -> None:
    x = sources(num=32)
    y = random_channel_swap(x, np.random.default_rng(1))
    swapped = y[:, 0, 0] < 0  # left channel was positive before the swap
    assert 0 < int(swapped.sum()) < 32
    torch.testing.assert_close(y[swapped], x[swapped].flip(1))
    torch.testing.assert_close(y[~swapped], x[~swapped])
    assert torch.equal(random_channel_swap(x, np.random.default_rng(1), p=0.0), x)
    assert torch.equal(random_channel_swap(x, np.random.default_rng(1), p=1.0), x.flip(1))


def test_channel_swap_leaves_mono_alone() -> None:
    x = sources(channels=1)
    assert torch.equal(random_channel_swap(x, np.random.default_rng(0), p=1.0), x)


def test_is_silent_threshold() -> None:
    assert is_silent(torch.zeros(2, 100), -60.0)
    assert is_silent(torch.zeros(2, 0), -60.0)
    quiet = torch.full((2, 100), 10 ** (-70 / 20))  # -70 dBFS mean power
    assert is_silent(quiet, -60.0) and not is_silent(quiet, -80.0)
    assert not is_silent(torch.full((2, 100), 0.1), -60.0)


def test_transforms_draw_as_their_functions() -> None:
    """A transform makes the same draws from the item's generator as its function, so a config of transforms
    gives the same items as the functions called in the same order."""
    x = sources(num=8)
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    a = ChannelSwap()(RandomGain(-6.0, 3.0)(x, rng_a), rng_a)
    b = random_channel_swap(random_gain(x, rng_b, -6.0, 3.0), rng_b, 0.5)
    assert torch.equal(a, b) and rng_a.random() == rng_b.random()


def test_transforms_check_their_settings() -> None:
    with pytest.raises(ValueError, match="low_db <= high_db"):
        RandomGain(3.0, -6.0)
    with pytest.raises(ValueError, match="p in \\[0, 1\\]"):
        ChannelSwap(p=1.5)
    assert (
        repr(RandomGain()) == "RandomGain(low_db=-6.0, high_db=3.0)"
        and repr(ChannelSwap()) == "ChannelSwap(p=0.5)"
    )
