"""BSSEval v4: ``musicbench.metrics.bsseval`` vs ``museval.evaluate`` on 4-source stereo 44.1 kHz tracks.

Two kinds of content. Synthetic: each source is a sequence of harmonic notes with attack/decay envelopes plus
a faint noise floor; estimates are the references plus crosstalk from the other sources plus white noise.
Chorales (when the embedded set has been generated, ``make data``; its root is ``$CHORALES_ROOT``, default
``data/chorales``): the four voices of the test pieces, concatenated to the track length, as references; the
estimates are each voice plus leakage of the others and white noise. Both
implementations run in this process on the same arrays (museval on CPU; ours on CPU, and on CUDA when
available). Prints wall times, the speed ratio, the max |difference| per metric over frames where museval is
finite, and whether NaN frames agree. The CPU pressure (Linux PSI) shows whether other processes competed
for the cores during a measurement; timings taken under pressure are not comparable.

    python -m benchmarks --only bsseval [--quick]
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from musicbench.metrics.bsseval import METRICS, bsseval

SAMPLE_RATE = 44100
SOURCES = 4
CHANNELS = 2
DURATIONS = (30.0, 180.0)
QUICK_DURATIONS = (10.0,)
VOICES = ("soprano", "alto", "tenor", "bass")
CHORALES_ROOT = Path(os.environ.get("CHORALES_ROOT", "data/chorales"))


def synth_track(
    seconds: float, sample_rate: int = SAMPLE_RATE, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Music-like references and estimates, ``(sources, channels, samples)`` float64 each."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    ref = np.zeros((SOURCES, CHANNELS, n))
    for s in range(SOURCES):
        pos = 0
        pan = rng.uniform(0.3, 1.0, CHANNELS)
        while pos < n:
            dur = int(rng.uniform(0.15, 0.8) * sample_rate)
            m = min(dur, n - pos)
            tt = np.arange(m) / sample_rate
            f0 = 55.0 * (s + 1) * 2 ** (rng.integers(0, 24) / 12)
            env = np.minimum(1.0, tt / 0.01) * np.exp(-tt * rng.uniform(1.0, 8.0))
            harmonics = np.arange(1, 9)[:, None]
            tone = (
                np.sin(2 * np.pi * f0 * harmonics * tt + rng.uniform(0, 2 * np.pi, (8, 1))) / harmonics
            ).sum(0)
            ref[s, :, pos : pos + m] += pan[:, None] * (tone * env)
            pos += dur
        ref[s] += 1e-3 * rng.standard_normal((CHANNELS, n))
    crosstalk = 0.1 * (ref.sum(0, keepdims=True) - ref)
    est = ref + crosstalk + 0.05 * rng.standard_normal(ref.shape)
    return ref, est


def chorale_track(seconds: float, root: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """References (the four voices of the test pieces of the chorales under ``root``, concatenated piece after
    piece to ``seconds``) and estimates, ``(4, 2, samples)`` float64; ``None`` if the set is missing."""
    pieces = sorted(p for p in (root / "test").glob("*") if (p / "soprano.wav").is_file())
    if not pieces:
        return None
    n = int(seconds * SAMPLE_RATE)
    parts, total = [], 0
    for piece in itertools.cycle(pieces):  # piece after piece until the track is long enough
        voices = [sf.read(piece / f"{v}.wav", dtype="float64", always_2d=True) for v in VOICES]
        if any(sr != SAMPLE_RATE for _, sr in voices):
            raise ValueError(f"{piece}: expected {SAMPLE_RATE} Hz chorales")
        parts.append(np.stack([np.broadcast_to(x, (x.shape[0], CHANNELS)).T for x, _ in voices]))
        total += parts[-1].shape[-1]
        if total >= n:
            break
    ref = np.ascontiguousarray(np.concatenate(parts, axis=-1)[..., :n])  # strided input is slower to score
    rng = np.random.default_rng(seed)
    leakage = 0.15 * (ref.sum(0, keepdims=True) - ref)
    est = 0.9 * ref + leakage + 0.01 * rng.standard_normal(ref.shape)
    return ref, est


def compare(ours: dict[str, torch.Tensor], theirs: tuple[np.ndarray, ...]) -> str:
    parts = []
    nan_ok = True
    for name, m in zip(METRICS, theirs, strict=True):
        a = ours[name].cpu().numpy()
        nan_ok &= bool((np.isnan(a) == np.isnan(m)).all())
        finite = np.isfinite(m)
        diff = float(np.abs(a[finite] - m[finite]).max()) if finite.any() else 0.0
        parts.append(f"{name} {diff:.1e}")
    return "max|diff| dB: " + ", ".join(parts) + f"; NaN frames agree: {nan_ok}"


def cpu_pressure() -> str:
    """Linux PSI 'some avg10' for the CPU: the share of time runnable tasks waited for a core (other load)."""
    try:
        with open("/proc/pressure/cpu") as f:
            return f.readline().split()[1].split("=")[1] + "%"
    except OSError:
        return "n/a"


def run(seconds: float, content: str = "synthetic", repeats: int = 2) -> None:
    import museval

    if content == "chorales":
        track = chorale_track(seconds, CHORALES_ROOT)
        if track is None:
            print(f"-- chorales: no test pieces under {CHORALES_ROOT} (make data); skipped --", flush=True)
            return
        ref, est = track
    else:
        ref, est = synth_track(seconds)
    print(
        f"-- {content}, {seconds:.0f} s, {SOURCES} sources, stereo, {SAMPLE_RATE} Hz, win=hop=44100, v4 --",
        flush=True,
    )
    t0 = time.perf_counter()
    theirs = museval.evaluate(ref.transpose(0, 2, 1), est.transpose(0, 2, 1), win=44100, hop=44100, mode="v4")
    t_museval = time.perf_counter() - t0
    print(
        f"museval.evaluate        {t_museval:8.2f} s            (cpu pressure {cpu_pressure()})", flush=True
    )

    ref_t, est_t = torch.from_numpy(ref), torch.from_numpy(est)
    for i in range(repeats):  # the first call in a process also pays for fresh memory
        t0 = time.perf_counter()
        ours = bsseval(ref_t, est_t, win=44100, hop=44100, mode="v4")
        t_ours = time.perf_counter() - t0
        print(
            f"musicbench cpu, call {i + 1} {t_ours:8.2f} s {t_museval / t_ours:6.1f}x   "
            f"(cpu pressure {cpu_pressure()})  {compare(ours, theirs)}",
            flush=True,
        )

    if torch.cuda.is_available():
        dev = torch.device("cuda")
        bsseval(ref_t[..., : 2 * SAMPLE_RATE], est_t[..., : 2 * SAMPLE_RATE], device=dev)  # warm-up
        for i in range(repeats):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            ours_gpu = bsseval(
                ref_t.to(dev), est_t.to(dev), win=44100, hop=44100, mode="v4"
            )  # incl. transfer
            torch.cuda.synchronize()
            t_gpu = time.perf_counter() - t0
            print(
                f"musicbench cuda, call {i + 1} {t_gpu:7.2f} s {t_museval / t_gpu:6.1f}x   {compare(ours_gpu, theirs)}"
                f"  ({torch.cuda.get_device_name()})",
                flush=True,
            )


def main(quick: bool = False) -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads", flush=True)
    for content in ("synthetic", "chorales"):
        for seconds in QUICK_DURATIONS if quick else DURATIONS:
            run(seconds, content)


if __name__ == "__main__":
    main()
