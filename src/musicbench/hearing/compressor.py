"""The Cadenza/Clarity baseline compressor (pyclarity's ``clarity.enhancer.compressor.Compressor``), vectorised.

pyclarity's ``process`` is a per-sample Python loop::

    rms[n]  = sqrt(mean(x[n - W + 1 .. n] ** 2) + 1e-8)          # zeros before the signal
    if rms[n] > threshold:                                          # attack towards the target gain
        g[n] = g[n-1] * (1 - attack) + (rms[n] * attenuation + (1 - attenuation) * threshold) * attack
    else:                                                           # release towards 1
        g[n] = release + g[n-1] * (1 - release)
    y[n] = x[n] * g[n] * makeup_gain,  g[-1] = 1

The branch depends only on ``rms[n]`` (the input), never on the gain state, so the gain is a first-order
*linear* recursion with input-dependent coefficients, ``g[n] = a[n] g[n-1] + b[n]``. Such a recursion is an
associative scan over the pairs ``(a, b)`` (composition ``(a2, b2) o (a1, b1) = (a1 a2, a2 b1 + b2)``),
computed here exactly (no approximation, only rounding) with a blocked Hillis-Steele scan: ``O(T log B)``
work in ``O(log T)`` tensor operations, for any batch and device. The RMS is a moving sum computed from
per-block cumulative sums of positive terms, so a quiet passage after a loud one loses no precision.
"""

from __future__ import annotations

import math
from typing import Final

import torch
import torch.nn.functional as F

EPS: Final = 1e-8  # pyclarity's regulariser inside the RMS square root (so silence reads 1e-4)


def moving_rms(signal: torch.Tensor, window: int, eps: float = EPS) -> torch.Tensor:
    """``(..., T)`` trailing-window RMS of ``signal (..., T)``: ``sqrt(mean(x[n-window+1..n]^2) + eps)``.

    Samples before the start count as zeros (pyclarity pads ``window - 1`` zeros and convolves with a
    box). Each window sum is a suffix sum of one block plus a prefix sum of the next, both sums of
    squares, so there is no cancellation (unlike the difference of two running totals).
    """
    if window < 1:
        raise ValueError(f"window must be at least 1 sample, got {window}")
    squares = signal.square()
    samples = squares.shape[-1]
    if samples == 0:
        return squares.clone()
    n_blocks = (samples - 1) // window + 2
    # [window - 1 zeros | x^2 | zeros] cut into n_blocks blocks of `window` samples.
    padded = F.pad(squares, (window - 1, n_blocks * window - (samples + window - 1)))
    blocks = padded.reshape(*squares.shape[:-1], n_blocks, window)
    suffix = blocks.flip(-1).cumsum(-1).flip(-1)  # sum of blocks[b, j:]
    prefix = F.pad(blocks.cumsum(-1)[..., :-1], (1, 0))  # sum of blocks[b, :j]
    sums = (suffix[..., :-1, :] + prefix[..., 1:, :]).reshape(*squares.shape[:-1], -1)[..., :samples]
    return torch.sqrt(sums / window + eps)


def linear_recurrence(
    a: torch.Tensor, b: torch.Tensor, initial: float | torch.Tensor = 0.0, block_size: int = 1024
) -> torch.Tensor:
    """``y[n] = a[n] * y[n-1] + b[n]`` along the last dimension, with ``y[-1] = initial``.

    Exact up to rounding (an associative scan, not an approximation); batched over leading dimensions.

    Args:
        a, b: ``(..., T)`` coefficients (same shape).
        initial: ``y[-1]``, a number or a tensor broadcastable to ``(...)``.
        block_size: scan length per block; longer sequences scan blocks, then the block carries
            (recursively), then fix each block up. Trades ``O(T log block_size)`` work against the number
            of tensor operations.

    Returns:
        ``(..., T)`` the sequence ``y``.
    """
    if a.shape != b.shape:
        raise ValueError(f"a {tuple(a.shape)} and b {tuple(b.shape)} must have the same shape")
    if block_size < 2:
        raise ValueError(f"block_size must be at least 2, got {block_size}")
    if a.shape[-1] == 0:
        return b.clone()
    # Fold the initial state into the first step; the scan then starts from y[-1] = 0.
    b = b.clone()
    b[..., 0] = a[..., 0] * initial + b[..., 0]
    return _scan_zero_initial(a, b, block_size)


def _scan_zero_initial(a: torch.Tensor, b: torch.Tensor, block_size: int) -> torch.Tensor:
    samples = a.shape[-1]
    if samples <= block_size:
        return _hillis_steele(a, b)[1]
    n_blocks = -(-samples // block_size)
    pad = n_blocks * block_size - samples
    # Padding with the identity step (a = 1, b = 0) leaves the carries unchanged.
    a_blocks = F.pad(a, (0, pad), value=1.0).reshape(*a.shape[:-1], n_blocks, block_size)
    b_blocks = F.pad(b, (0, pad), value=0.0).reshape(*b.shape[:-1], n_blocks, block_size)
    a_local, b_local = _hillis_steele(a_blocks, b_blocks)
    # State at the end of every block: itself a linear recurrence over the blocks.
    ends = _scan_zero_initial(a_local[..., -1], b_local[..., -1], block_size)
    carry_in = F.pad(ends[..., :-1], (1, 0))
    y = a_local * carry_in[..., None] + b_local
    return y.reshape(*a.shape[:-1], -1)[..., :samples]


def _hillis_steele(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive scan of the affine maps ``y -> a y + b`` along the last dimension (log-depth).

    Returns ``(A, B)`` with ``y[n] = A[n] * y[-1] + B[n]``.
    """
    big_a, big_b = a, b
    shift = 1
    samples = a.shape[-1]
    while shift < samples:
        # Compose each step with the composite `shift` steps earlier (older maps apply first).
        new_b = big_a[..., shift:] * big_b[..., :-shift] + big_b[..., shift:]
        new_a = big_a[..., shift:] * big_a[..., :-shift]
        big_b = torch.cat((big_b[..., :shift], new_b), dim=-1)
        big_a = torch.cat((big_a[..., :shift], new_a), dim=-1)
        shift *= 2
    return big_a, big_b


def _time_constant_coefficient(t_msec: float, sample_rate: float, name: str) -> float:
    if not (math.isfinite(t_msec) and t_msec > 0):
        raise ValueError(f"{name} must be a positive time in ms, got {t_msec!r}")
    # pyclarity's arithmetic, kept in this order so the coefficient is the same double.
    t_sec = t_msec / 1000.0
    return (1.0 / t_sec) / sample_rate


class Compressor:
    """pyclarity's baseline ``Compressor`` with its parameters and defaults, vectorised and batched.

    Args:
        sample_rate: in Hz (pyclarity's ``fs``); the RMS window and the time constants are in samples of it.
        attack: time constant in ms of gain reduction while the RMS exceeds ``threshold``.
        release: time constant in ms of the return towards unit gain otherwise.
        threshold: RMS (linear, full scale 1) above which the compressor attacks.
        attenuation: slope of the target gain above threshold: ``rms * attenuation +
            (1 - attenuation) * threshold``.
        rms_buffer_size: RMS window in seconds (``int(rms_buffer_size * sample_rate)`` samples).
        makeup_gain: linear gain applied after compression.

    The CAD1 / ICASSP 2024 baselines use ``threshold=0.35, attenuation=0.1, attack=50, release=1000,
    rms_buffer_size=0.064`` and CAD1 task 2 ``threshold=0.7, attenuation=0.1, attack=5, release=20,
    rms_buffer_size=0.064``, all with the default ``sample_rate=44100`` and ``makeup_gain=1``.
    """

    def __init__(
        self,
        sample_rate: float = 44100.0,
        attack: float = 5.0,
        release: float = 20.0,
        threshold: float = 1.0,
        attenuation: float = 0.0001,
        rms_buffer_size: float = 0.2,
        makeup_gain: float = 1.0,
    ) -> None:
        if not (math.isfinite(sample_rate) and sample_rate > 0):
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
        for name, value in (
            ("threshold", threshold),
            ("attenuation", attenuation),
            ("makeup_gain", makeup_gain),
            ("rms_buffer_size", rms_buffer_size),
        ):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        self.sample_rate = sample_rate
        self.attack = attack  # ms
        self.release = release  # ms
        self.threshold = threshold
        self.attenuation = attenuation
        self.rms_buffer_size = rms_buffer_size  # s
        self.makeup_gain = makeup_gain
        # Per-sample smoothing coefficients (what pyclarity stores as `attack` / `release`).
        self.attack_coefficient = _time_constant_coefficient(attack, sample_rate, "attack")
        self.release_coefficient = _time_constant_coefficient(release, sample_rate, "release")
        self.window = int(rms_buffer_size * sample_rate)  # samples, truncated as pyclarity does
        if self.window < 1:
            raise ValueError(
                f"rms_buffer_size={rms_buffer_size} s at sample_rate={sample_rate} Hz is "
                f"{rms_buffer_size * sample_rate} samples: the RMS window needs at least 1"
            )

    def __repr__(self) -> str:
        return (
            f"Compressor(sample_rate={self.sample_rate}, attack={self.attack}, release={self.release}, "
            f"threshold={self.threshold}, attenuation={self.attenuation}, "
            f"rms_buffer_size={self.rms_buffer_size}, makeup_gain={self.makeup_gain})"
        )

    def gain(self, rms: torch.Tensor) -> torch.Tensor:
        """``(..., T)`` the smoothed linear gain for an ``(..., T)`` RMS track (starting from gain 1)."""
        above = rms > self.threshold
        target = rms * self.attenuation + (1.0 - self.attenuation) * self.threshold
        a = torch.where(
            above,
            torch.full_like(rms, 1.0 - self.attack_coefficient),
            torch.full_like(rms, 1.0 - self.release_coefficient),
        )
        b = torch.where(
            above, target * self.attack_coefficient, torch.full_like(rms, self.release_coefficient)
        )
        return linear_recurrence(a, b, initial=1.0)

    def process(
        self, signal: torch.Tensor, dtype: torch.dtype = torch.float64
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Compress ``signal (..., T)``; each row along the last dimension is independent (a channel).

        Args:
            signal: ``(..., T)`` samples, any device.
            dtype: computation and output dtype (float64 matches pyclarity's NumPy arithmetic).

        Returns:
            ``(output, rms, gain)``, each ``(..., T)``: the compressed signal, the RMS track and the linear
            gain (pyclarity returns the gain as a list; here it is a tensor).
        """
        if signal.ndim == 0:
            raise ValueError("signal must have a samples dimension, got a scalar")
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be floating point, got {dtype}")
        x = signal.to(dtype)
        rms = moving_rms(x, self.window)
        gain = self.gain(rms)
        return x * gain * self.makeup_gain, rms, gain

    __call__ = process


def compress(
    signal: torch.Tensor,
    sample_rate: float = 44100.0,
    attack: float = 5.0,
    release: float = 20.0,
    threshold: float = 1.0,
    attenuation: float = 0.0001,
    rms_buffer_size: float = 0.2,
    makeup_gain: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Functional ``Compressor(...).process(signal)``: ``(output, rms, gain)``, each ``(..., T)``."""
    compressor = Compressor(
        sample_rate, attack, release, threshold, attenuation, rms_buffer_size, makeup_gain
    )
    return compressor.process(signal, dtype=dtype)
