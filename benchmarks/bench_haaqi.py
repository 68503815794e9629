"""HAAQI: pyclarity's ``compute_haaqi`` vs ours, side by side in one process, on realistic and synthetic music.

Content (``benchmarks/common.py``): the chorale set's test pieces (real instrument samples), the clean
mixture as the reference and its LAME 32 kbit/s MP3 version as the processed signal, 44.1 kHz; and the
synthetic ``music_like`` signals with white noise added. Cadenza scores each ear with its own audiogram,
so a stereo track is two HAAQI calls; times are per call (per ear), the mean of the two.

Ours runs twice per signal: like for like (the same internal-noise draws from NumPy's global RNG through the
``noise`` hook and pyclarity's whole-kHz rate rounding: the scores must agree to rounding; both pay for
NumPy's 46 M normal draws of 30 s) and as used (counter-based noise, exact-ratio resampling: the score
moves by the rate rounding, ~1e-3 at 44.1 kHz, and the noise, ~1e-4). The batch row scores 8 signals (the
4 voices x 2 ears of the chorales against their MP3 versions) in one call and reports the time per item
and the largest difference from the single-item calls. Peak RSS is the rise of this process's resident
memory during each call (sampled every 2 ms); ours is warmed up first (JIT cache, first touch of memory).

    python -m benchmarks --only haaqi [--quick]
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.common import (
    MissingContent,
    chorale_mixture,
    chorale_stems,
    cpu_pressure,
    mp3_version,
    table,
    timed,
)
from musicbench.audio.testsignals import music_like

LEVELS = {"left": [20, 30, 40, 50, 60, 65], "right": [25, 35, 40, 55, 65, 70]}
FREQS = np.array([250, 500, 1000, 2000, 4000, 6000], dtype=float)
SR = 44100


def _numpy_noise(seed: int):  # type: ignore[no-untyped-def]
    """pyclarity's draws from NumPy's global RNG, in its order (the two signals' BM noise)."""
    np.random.seed(seed)

    def noise(n: int) -> torch.Tensor:
        return torch.from_numpy(
            np.stack([np.random.standard_normal((32, n)), np.random.standard_normal((32, n))])
        )

    noise.discard = lambda shape: np.random.standard_normal(shape)  # type: ignore[attr-defined]
    return noise


def chorale_pair(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """``(2, T)`` clean chorale mixture and its MP3 32 kbit/s version (left, right ear)."""
    ref, rate = chorale_mixture(seconds)
    assert rate == SR, rate
    return ref, mp3_version(ref, rate, 32)


def synthetic_pair(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """``(2, T)`` music-like signals and the same with white noise (-34 dB re: full scale)."""
    ref = np.stack([music_like(seconds, SR, 0), music_like(seconds, SR, 1)])
    return ref, ref + 0.02 * np.random.default_rng(3).standard_normal(ref.shape)


def _pyclarity(ref: np.ndarray, proc: np.ndarray) -> list[float]:
    from clarity.evaluator.haaqi import compute_haaqi
    from clarity.utils.audiogram import Audiogram as ClarityAudiogram

    scores = []
    for i, ear in enumerate(LEVELS):
        np.random.seed(i)
        audiogram = ClarityAudiogram(levels=np.array(LEVELS[ear], float), frequencies=FREQS)
        scores.append(float(compute_haaqi(proc[i], ref[i], SR, SR, audiogram)))
    return scores


def _ours_like_for_like(ref: torch.Tensor, proc: torch.Tensor) -> list[float]:
    from musicbench.metrics.haaqi import haaqi

    return [
        float(haaqi(ref[i], proc[i], SR, SR, LEVELS[ear], noise=_numpy_noise(i), resampling="pyclarity"))
        for i, ear in enumerate(LEVELS)
    ]


def _ours(ref: torch.Tensor, proc: torch.Tensor) -> list[float]:
    from musicbench.metrics.haaqi import haaqi

    return [float(haaqi(ref[i], proc[i], SR, SR, LEVELS[ear], seed=i)) for i, ear in enumerate(LEVELS)]


def _gb(peak) -> str:  # type: ignore[no-untyped-def]
    return f"{peak.rise_gb:.2f}"


def pair_rows(name: str, ref: np.ndarray, proc: np.ndarray, seconds: float) -> tuple[list[list[str]], float]:
    """Table rows for one stereo pair: pyclarity, ours like for like, ours as used; and pyclarity's time
    per signal."""
    from musicbench.metrics.haaqi import haaqi

    ref_t, proc_t = torch.from_numpy(ref), torch.from_numpy(proc)
    haaqi(ref_t[0], proc_t[0], SR, SR, LEVELS["left"], seed=0)  # warm-up, full length
    t_like, p_like, like = timed(_ours_like_for_like, ref_t, proc_t)
    t_ours, p_ours, ours = timed(_ours, ref_t, proc_t)
    t_ref, p_ref, theirs = timed(_pyclarity, ref, proc)
    diff_like = max(abs(a - b) for a, b in zip(like, theirs, strict=True))
    diff_ours = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    head = f"{name}, {seconds:g} s"
    rows = [
        [
            head,
            "pyclarity compute_haaqi",
            f"{t_ref / 2:.2f}",
            "1.0x",
            "",
            _gb(p_ref),
            f"{np.mean(theirs):.4f}",
        ],
        [
            head,
            "musicbench, pyclarity's noise + rates",
            f"{t_like / 2:.2f}",
            f"{t_ref / t_like:.1f}x",
            f"{diff_like:.1e}",
            _gb(p_like),
            f"{np.mean(like):.4f}",
        ],
        [
            head,
            "musicbench (counter noise, exact rates)",
            f"{t_ours / 2:.2f}",
            f"{t_ref / t_ours:.1f}x",
            f"{diff_ours:.1e}",
            _gb(p_ours),
            f"{np.mean(ours):.4f}",
        ],
    ]
    return rows, t_ref / 2


def batch_row(seconds: float, reference_per_signal: float | None) -> list[str]:
    """8 signals (the chorales' 4 voices x 2 ears vs their MP3 versions) in one batched call."""
    from musicbench.metrics.haaqi import haaqi

    stems, rate = chorale_stems(seconds)
    coded = np.stack([mp3_version(s, rate, 32) for s in stems])
    refs = torch.from_numpy(stems.reshape(-1, stems.shape[-1]))
    procs = torch.from_numpy(coded.reshape(-1, coded.shape[-1]))
    audiograms = [LEVELS["left"], LEVELS["right"]] * (refs.shape[0] // 2)
    haaqi(refs[:1], procs[:1], SR, SR, audiograms[:1], seed=0)  # warm-up
    elapsed, peak, scores = timed(haaqi, refs, procs, SR, SR, audiograms, seed=list(range(refs.shape[0])))
    single = float(haaqi(refs[3], procs[3], SR, SR, audiograms[3], seed=3))
    per_item = elapsed / refs.shape[0]
    ratio = f"{reference_per_signal / per_item:.1f}x" if reference_per_signal else "n/a"
    return [
        f"chorales, batch of {refs.shape[0]} x {seconds:g} s",
        "musicbench, one batched call (per item)",
        f"{per_item:.2f}",
        ratio,
        f"{abs(float(scores[3]) - single):.1e} vs single",
        _gb(peak),
        f"{float(scores.mean()):.4f}",
    ]


def main(quick: bool = False) -> None:
    seconds = 5.0 if quick else 30.0
    print(f"torch threads: {torch.get_num_threads()}; CPU pressure at start {cpu_pressure()}", flush=True)
    rows: list[list[str]] = []
    chorale_reference = None
    try:
        ref, proc = chorale_pair(seconds)
        chorale_rows, chorale_reference = pair_rows("chorales vs MP3 32k", ref, proc, seconds)
        rows += chorale_rows
    except MissingContent as err:
        print(f"skipping the chorales: {err}", flush=True)
    ref, proc = synthetic_pair(seconds)
    rows += pair_rows("synthetic + noise", ref, proc, seconds)[0]
    if chorale_reference is not None:
        rows.append(batch_row(seconds, chorale_reference))
    header = [
        "content",
        "implementation",
        "s per signal",
        "speed-up",
        "max |diff|",
        "peak RSS rise GB",
        "mean",
    ]
    print(table(header, rows), flush=True)
    print(
        f"CPU pressure at the end {cpu_pressure()} (share of time runnable tasks waited for a core: "
        "other load makes timings incomparable)",
        flush=True,
    )
    if torch.cuda.is_available():
        print("CUDA: see `make bench-gpu`", flush=True)


if __name__ == "__main__":
    main()
