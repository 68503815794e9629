"""HAAQI: pyclarity's ``compute_haaqi`` vs ours on the same stereo music-like signals, side by side.

Cadenza scores each ear with its own audiogram; a stereo signal is therefore two HAAQI calls (left ear,
right ear). Both implementations get the same internal-noise draws (NumPy's global RNG, seeded, fed to ours
through the ``noise`` hook), so the scores agree to rounding and the timing compares like with like.
"""

from __future__ import annotations

import time

import numpy as np
import torch

LEVELS = {"left": [20, 30, 40, 50, 60, 65], "right": [25, 35, 40, 55, 65, 70]}
FREQS = np.array([250, 500, 1000, 2000, 4000, 6000], dtype=float)
SR = 44100


def music(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A music-like mono signal: enveloped harmonic notes plus a little noise, ``(samples,)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = 0.003 * rng.standard_normal(len(t))
    n_notes = max(2, int(seconds * 4))
    for f0, start in zip(rng.uniform(110, 880, n_notes), np.linspace(0, seconds * 0.9, n_notes), strict=True):
        env = np.clip((t - start) * 40, 0, 1) * np.exp(-np.clip(t - start, 0, None) * 2)
        for h in range(1, 7):
            x += 0.06 / h * env * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
    return x


def _numpy_noise(n: int) -> torch.Tensor:
    # pyclarity draws the two signals' threshold noise in this order from NumPy's global RNG.
    return torch.from_numpy(
        np.stack([np.random.standard_normal((32, n)), np.random.standard_normal((32, n))])
    )


def run_pair(seconds: float, device: str = "cpu") -> None:
    from clarity.evaluator.haaqi import compute_haaqi
    from clarity.utils.audiogram import Audiogram as ClarityAudiogram

    from musicbench.metrics.haaqi import haaqi

    ref = np.stack([music(seconds, SR, 0), music(seconds, SR, 1)])
    proc = ref + 0.02 * np.random.default_rng(3).standard_normal(ref.shape)
    ears = list(LEVELS)
    t0 = time.perf_counter()
    theirs = []
    for i, ear in enumerate(ears):
        np.random.seed(i)
        audiogram = ClarityAudiogram(levels=np.array(LEVELS[ear], float), frequencies=FREQS)
        theirs.append(compute_haaqi(proc[i], ref[i], SR, SR, audiogram))
    t_theirs = time.perf_counter() - t0

    ref_t, proc_t = torch.from_numpy(ref).to(device), torch.from_numpy(proc).to(device)
    haaqi(ref_t[0, :SR], proc_t[0, :SR], SR, SR, LEVELS["left"], seed=0)  # warm-up
    t0 = time.perf_counter()
    ours = []
    for i, ear in enumerate(ears):
        np.random.seed(i)
        ours.append(float(haaqi(ref_t[i], proc_t[i], SR, SR, LEVELS[ear], noise=_numpy_noise)))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t_ours = time.perf_counter() - t0
    diff = max(abs(a - b) for a, b in zip(theirs, ours, strict=True))
    print(
        f"stereo {seconds:g} s at {SR} Hz ({device}, {torch.get_num_threads()} threads): "
        f"pyclarity {t_theirs:.2f} s, musicbench {t_ours:.2f} s, ratio {t_theirs / t_ours:.1f}x, "
        f"max |diff| {diff:.1e}",
        flush=True,
    )


def run_batch(seconds: float, items: int, device: str = "cpu") -> None:
    from musicbench.metrics.haaqi import haaqi

    ref = torch.from_numpy(np.stack([music(seconds, SR, i) for i in range(items)])).to(device)
    proc = ref + 0.02 * torch.randn(
        ref.shape, generator=torch.Generator().manual_seed(0), dtype=ref.dtype
    ).to(device)
    t0 = time.perf_counter()
    scores = haaqi(ref, proc, SR, SR, LEVELS["left"], seed=0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    print(
        f"batch of {items} x {seconds:g} s ({device}): musicbench {elapsed:.2f} s "
        f"({elapsed / items:.2f} s per item); scores {scores.min():.3f}..{scores.max():.3f}",
        flush=True,
    )


def main(quick: bool = False) -> None:
    seconds = 5.0 if quick else 30.0
    run_pair(seconds)
    run_batch(seconds, 8)
    if torch.cuda.is_available():
        run_pair(seconds, "cuda")
        run_batch(seconds, 8, "cuda")


if __name__ == "__main__":
    main()
