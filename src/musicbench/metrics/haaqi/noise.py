"""Counter-based Gaussian noise for HAAQI's auditory-threshold noise: the same draws on every device.

HAAQI adds low-level Gaussian noise to the basilar-membrane motion (the auditory threshold). A sequential
RNG (NumPy's, or ``torch.randn`` with a generator) gives draws that depend on the device and on the order
in which items and bands are processed. Here draw ``n`` of stream ``(seed, stream)`` is a pure function of
those three integers (a PCG hash, Jarzynski & Olano 2020, then Box-Muller), so the CPU kernels, the torch
path on CUDA and a batched call all get bit-identical uniforms, and the same seed gives the same score
wherever it runs (float rounding of log/cos aside, ~1e-16).

All integer arithmetic is uint32 carried in int64 (products stay below 2**62), so torch and numba compute
the same bits.
"""

from __future__ import annotations

import math

import numpy as np
import torch

MASK32 = 0xFFFFFFFF
_INV_2_32 = 1.0 / 4294967296.0


def pcg_hash(v: torch.Tensor) -> torch.Tensor:
    """PCG-RXS-M-XS 32-bit hash of an int64 tensor of values in ``[0, 2**32)`` (same dtype/shape)."""
    state = (v * 747796405 + 2891336453) & MASK32
    word = (((state >> ((state >> 28) + 4)) ^ state) * 277803737) & MASK32
    return (word >> 22) ^ word


def stream_key(seed: int, stream: int) -> int:
    """The 32-bit key of noise stream ``stream`` (e.g. signal x band) of ``seed`` (Python ints)."""
    key = int(pcg_hash(torch.tensor([seed & MASK32]))[0])
    return int(pcg_hash(torch.tensor([(key ^ ((stream * 0x9E3779B9) & MASK32)) & MASK32]))[0])


def stream_keys(seeds: list[int], streams: int) -> np.ndarray:
    """``(len(seeds), 2 * streams)`` int64 keys ``stream_key(seed, s)`` of streams ``0 .. 2 streams - 1``
    (reference bands, then processed bands) of each seed, computed at once."""
    seed_t = torch.tensor([s & MASK32 for s in seeds], dtype=torch.int64)
    stream_t = (torch.arange(2 * streams, dtype=torch.int64) * 0x9E3779B9) & MASK32
    keys = pcg_hash((pcg_hash(seed_t)[:, None] ^ stream_t[None, :]) & MASK32)
    return np.ascontiguousarray(keys.numpy())


def threshold_noise(
    seed: int,
    num_streams: int,
    length: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Standard-normal draws ``(num_streams, length)``: row ``s`` is stream ``s`` of ``seed``.

    Draws ``2p`` and ``2p + 1`` of a stream are the cosine and sine outputs of one Box-Muller pair whose
    uniforms are the hashes of ``2p`` and ``2p + 1`` under the stream's key. The transform runs in
    float32 (the noise is ~75 dB below the signal) and is returned as ``dtype``.
    """
    keys = torch.tensor([stream_key(seed, s) for s in range(num_streams)], dtype=torch.int64, device=device)
    return noise_from_keys(keys, length, dtype)


def noise_from_keys(keys: torch.Tensor, length: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``(*keys.shape, length)`` standard-normal draws of the streams with int64 ``keys`` (any shape,
    on their device): ``threshold_noise`` for keys from ``stream_key`` / ``stream_keys``."""
    device = keys.device
    lead = keys.shape
    keys = keys.reshape(-1)
    pairs = (length + 1) // 2
    p2 = 2 * torch.arange(pairs, dtype=torch.int64, device=device)
    h1 = pcg_hash(pcg_hash(p2)[None, :] ^ keys[:, None])
    h2 = pcg_hash(pcg_hash(p2 + 1)[None, :] ^ keys[:, None])
    f32 = torch.float32
    radius = torch.sqrt(-2.0 * torch.log((h1.to(f32) + 1.0) * _INV_2_32))
    theta = (2.0 * math.pi * _INV_2_32) * h2.to(f32)
    out = torch.stack((radius * torch.cos(theta), radius * torch.sin(theta)), dim=-1)
    return out.reshape(*lead, 2 * pairs)[..., :length].to(dtype)


def seed_from(generator: torch.Generator | None) -> int:
    """A 31-bit seed drawn from ``generator`` (torch's global RNG when ``None``)."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


__all__ = ["noise_from_keys", "pcg_hash", "seed_from", "stream_key", "stream_keys", "threshold_noise"]
