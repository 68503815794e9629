"""Speed and parity of ``haaqi`` against pyclarity's ``compute_haaqi`` on one pair (needs pyclarity).

    python -m musicbench.metrics.haaqi.benchmark --seconds 10 --sample-rate 44100 [--threads 1] [--device cuda]

Both runs use the same internal-noise draws (NumPy's global RNG, seeded), so the scores agree to rounding.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _music(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = 0.003 * rng.standard_normal(len(t))
    n_notes = max(2, int(seconds * 4))
    for f0, start in zip(rng.uniform(110, 880, n_notes), np.linspace(0, seconds * 0.9, n_notes), strict=True):
        env = np.clip((t - start) * 40, 0, 1) * np.exp(-np.clip(t - start, 0, None) * 2)
        for h in range(1, 7):
            x += 0.06 / h * env * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
    return x


def main(argv: list[str] | None = None) -> None:
    from clarity.evaluator.haaqi import compute_haaqi
    from clarity.utils.audiogram import Audiogram as ClarityAudiogram

    from musicbench.metrics.haaqi import haaqi

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sr = args.sample_rate
    ref = _music(args.seconds, sr)
    proc = ref + 0.02 * np.random.default_rng(3).standard_normal(len(ref))
    levels = [20, 30, 40, 50, 60, 65]
    freqs = np.array([250, 500, 1000, 2000, 4000, 6000], dtype=float)
    ref_t = torch.from_numpy(ref).to(args.device)
    proc_t = torch.from_numpy(proc).to(args.device)
    haaqi(ref_t[:sr], proc_t[:sr], sr, sr, levels, seed=0)  # warm-up

    np.random.seed(0)
    start = time.perf_counter()
    theirs = compute_haaqi(
        proc, ref, sr, sr, ClarityAudiogram(levels=np.array(levels, float), frequencies=freqs)
    )
    t_theirs = time.perf_counter() - start

    np.random.seed(0)

    def noise(n):
        return torch.from_numpy(
            np.stack([np.random.standard_normal((32, n)), np.random.standard_normal((32, n))])
        )

    start = time.perf_counter()
    ours = float(haaqi(ref_t, proc_t, sr, sr, levels, noise=noise))
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t_ours = time.perf_counter() - start
    print(
        f"{args.seconds:g} s at {sr} Hz, torch threads {torch.get_num_threads()}, device {args.device}: "
        f"pyclarity {t_theirs:.2f} s, musicbench {t_ours:.2f} s ({t_theirs / t_ours:.1f}x); "
        f"scores {theirs:.8f} / {ours:.8f} (|diff| {abs(theirs - ours):.1e})"
    )


if __name__ == "__main__":
    main()
