"""HAAQI: pyclarity's ``compute_haaqi`` vs ours on the same stereo music-like signals, side by side.

Cadenza scores each ear with its own audiogram; a stereo signal is therefore two HAAQI calls (left ear,
right ear). Ours runs twice: like for like (the same internal-noise draws from NumPy's global RNG through
the ``noise`` hook, and ``resampling="pyclarity"``: the scores agree to rounding, and both pay for NumPy's
46 M normal draws), and as used (counter-based noise, exact-ratio resampling). The batch line scores 8
stems in one call.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from musicbench.audio.testsignals import music_like

LEVELS = {"left": [20, 30, 40, 50, 60, 65], "right": [25, 35, 40, 55, 65, 70]}
FREQS = np.array([250, 500, 1000, 2000, 4000, 6000], dtype=float)
SR = 44100


def _numpy_noise(n: int) -> torch.Tensor:
    # pyclarity draws the two signals' threshold noise in this order from NumPy's global RNG.
    return torch.from_numpy(
        np.stack([np.random.standard_normal((32, n)), np.random.standard_normal((32, n))])
    )


def _stereo(seconds: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    ref = np.stack([music_like(seconds, SR, seed), music_like(seconds, SR, seed + 1)])
    proc = ref + 0.02 * np.random.default_rng(seed + 3).standard_normal(ref.shape)
    return ref, proc


def _ours_like_for_like(ref: torch.Tensor, proc: torch.Tensor) -> list[float]:
    """Ours with pyclarity's noise draws and rate rounding (the scores must agree to rounding)."""
    from musicbench.metrics.haaqi import haaqi

    scores = []
    for i, ear in enumerate(LEVELS):
        np.random.seed(i)
        scores.append(
            float(haaqi(ref[i], proc[i], SR, SR, LEVELS[ear], noise=_numpy_noise, resampling="pyclarity"))
        )
    return scores


def _ours_default(ref: torch.Tensor, proc: torch.Tensor) -> list[float]:
    """Ours as used: counter-based noise (seeded), exact-ratio resampling."""
    from musicbench.metrics.haaqi import haaqi

    return [float(haaqi(ref[i], proc[i], SR, SR, LEVELS[ear], seed=i)) for i, ear in enumerate(LEVELS)]


def _timed(fn, *args) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    out = fn(*args)
    if args[0].is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def run_pair(seconds: float, device: str = "cpu", with_reference: bool = True) -> None:
    """One stereo track (two ears, i.e. two signals): pyclarity and ours on the same signals.

    Ours is warmed up on the full-length input first (JIT cache load, FFT plans and the first touch of
    the ~2 GB of working memory, which a VM pays once per process); pyclarity runs last, so it finds the
    process's memory warm too. Times are per signal (per ear).
    """
    ref, proc = _stereo(seconds)
    ref_t, proc_t = torch.from_numpy(ref).to(device), torch.from_numpy(proc).to(device)
    from musicbench.metrics.haaqi import haaqi

    haaqi(ref_t[0], proc_t[0], SR, SR, LEVELS["left"], seed=0)  # warm-up, full length
    t_like, like = _timed(_ours_like_for_like, ref_t, proc_t)
    t_ours, ours = _timed(_ours_default, ref_t, proc_t)
    head = (
        f"one {seconds:g}-s signal at {SR} Hz ({device}, {torch.get_num_threads()} threads), mean of 2 ears:"
    )
    if not with_reference:
        print(
            f"{head} musicbench {t_ours / 2:.2f} s (same noise as pyclarity: {t_like / 2:.2f} s)", flush=True
        )
        return
    from clarity.evaluator.haaqi import compute_haaqi
    from clarity.utils.audiogram import Audiogram as ClarityAudiogram

    t0 = time.perf_counter()
    theirs = []
    for i, ear in enumerate(LEVELS):
        np.random.seed(i)
        audiogram = ClarityAudiogram(levels=np.array(LEVELS[ear], float), frequencies=FREQS)
        theirs.append(compute_haaqi(proc[i], ref[i], SR, SR, audiogram))
    t_theirs = time.perf_counter() - t0
    diff = max(abs(a - b) for a, b in zip(theirs, like, strict=True))
    default_diff = max(abs(a - b) for a, b in zip(theirs, ours, strict=True))
    print(
        f"{head}\n"
        f"  pyclarity                                  {t_theirs / 2:6.2f} s\n"
        f"  musicbench, pyclarity's noise and rates    {t_like / 2:6.2f} s  {t_theirs / t_like:5.1f}x  "
        f"max |diff| {diff:.1e}\n"
        f"  musicbench, default (seeded noise)         {t_ours / 2:6.2f} s  {t_theirs / t_ours:5.1f}x  "
        f"max |diff| {default_diff:.1e} (exact resampling, other noise)",
        flush=True,
    )


def run_batch(seconds: float, items: int, device: str = "cpu") -> None:
    """``items`` mono stems of ``seconds`` in one batched call (defaults: counter-based noise, exact rate)."""
    from musicbench.metrics.haaqi import haaqi

    ref = torch.from_numpy(np.stack([music_like(seconds, SR, i) for i in range(items)])).to(device)
    proc = ref + 0.02 * torch.randn(
        ref.shape, generator=torch.Generator().manual_seed(0), dtype=ref.dtype
    ).to(device)
    haaqi(ref[:1], proc[:1], SR, SR, LEVELS["left"], seed=0)  # warm-up (full length: JIT, first-touch memory)
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
        run_pair(seconds, "cuda", with_reference=False)
        run_batch(seconds, 8, "cuda")


if __name__ == "__main__":
    main()
