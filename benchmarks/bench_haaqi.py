"""HAAQI: pyclarity's ``compute_haaqi`` vs ours on the same stereo music-like signals, side by side.

Cadenza scores each ear with its own audiogram; a stereo signal is therefore two HAAQI calls (left ear,
right ear). For the comparison both implementations get the same internal-noise draws (NumPy's global
RNG, seeded, fed to ours through the ``noise`` hook) and ours runs with ``resampling="pyclarity"``, so the
scores agree to rounding and the timing compares like with like. The batch line uses the defaults
(counter-based noise, exact resampling).
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


def _ours(ref: torch.Tensor, proc: torch.Tensor, backend: str) -> list[float]:
    from musicbench.metrics.haaqi import haaqi

    scores = []
    for i, ear in enumerate(LEVELS):
        np.random.seed(i)
        scores.append(
            float(
                haaqi(
                    ref[i], proc[i], SR, SR, LEVELS[ear], noise=_numpy_noise, backend=backend,
                    resampling="pyclarity",
                )
            )
        )  # fmt: skip
    return scores


def run_pair(seconds: float, device: str = "cpu", with_reference: bool = True) -> None:
    """One stereo track (two ears): pyclarity, then ours, on the same signals and noise draws."""
    ref, proc = _stereo(seconds)
    ref_t, proc_t = torch.from_numpy(ref).to(device), torch.from_numpy(proc).to(device)
    backend = "auto"
    _ours(ref_t[:, :SR], proc_t[:, :SR], backend)  # warm-up: JIT/cache load, FFT plans, first-touch memory
    t0 = time.perf_counter()
    ours = _ours(ref_t, proc_t, backend)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t_ours = time.perf_counter() - t0
    line = f"stereo {seconds:g} s at {SR} Hz ({device}, {torch.get_num_threads()} threads): musicbench {t_ours:.2f} s"
    if with_reference:
        from clarity.evaluator.haaqi import compute_haaqi
        from clarity.utils.audiogram import Audiogram as ClarityAudiogram

        t0 = time.perf_counter()
        theirs = []
        for i, ear in enumerate(LEVELS):
            np.random.seed(i)
            audiogram = ClarityAudiogram(levels=np.array(LEVELS[ear], float), frequencies=FREQS)
            theirs.append(compute_haaqi(proc[i], ref[i], SR, SR, audiogram))
        t_theirs = time.perf_counter() - t0
        diff = max(abs(a - b) for a, b in zip(theirs, ours, strict=True))
        line += f", pyclarity {t_theirs:.2f} s, ratio {t_theirs / t_ours:.1f}x, max |diff| {diff:.1e}"
    print(line, flush=True)


def run_batch(seconds: float, items: int, device: str = "cpu") -> None:
    """``items`` mono stems of ``seconds`` in one batched call (defaults: counter-based noise, exact rate)."""
    from musicbench.metrics.haaqi import haaqi

    ref = torch.from_numpy(np.stack([music_like(seconds, SR, i) for i in range(items)])).to(device)
    proc = ref + 0.02 * torch.randn(
        ref.shape, generator=torch.Generator().manual_seed(0), dtype=ref.dtype
    ).to(device)
    haaqi(ref[:, :SR], proc[:, :SR], SR, SR, LEVELS["left"], seed=0)  # warm-up
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
