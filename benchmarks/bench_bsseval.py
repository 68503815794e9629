"""BSSEval v4: ``musicbench.metrics.bsseval`` vs ``museval.evaluate`` on 4-source stereo 44.1 kHz tracks.

Two kinds of content (see ``benchmarks.common``). Synthetic: each source is a sequence of harmonic notes with
attack/decay envelopes plus a faint noise floor; estimates are the references plus crosstalk from the other
sources plus white noise. Chorales (``make data``; ``$CHORALES_ROOT``): the four voices of the test pieces,
concatenated to the track length, as references; the estimates are each voice plus leakage of the others and
white noise. Both implementations run in this process on the same arrays (museval on CPU; ours on CPU, and on
CUDA when available). One Markdown table: wall times (ours: the fastest of three calls; the first call in a
process also pays for fresh memory), the speed ratio, the max |difference| per metric over frames where
museval is finite, whether NaN frames agree, the peak RSS rise of each, and the CPU pressure (Linux PSI) at
the end of the row: timings taken under pressure (other processes competing for the cores) are not
comparable.

    python -m benchmarks --only bsseval [--quick]
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from benchmarks.common import MissingContent, chorale_stems, cpu_pressure, table, timed
from musicbench.metrics.bsseval import METRICS, bsseval

SAMPLE_RATE = 44100
SOURCES = 4
CHANNELS = 2
DURATIONS = (30.0, 180.0)
QUICK_DURATIONS = (10.0,)
REPEATS = 3
HEADER = (
    "content",
    "track",
    "device",
    "museval s",
    "ours s",
    "ratio",
    r"max \|diff\| dB sdr / isr / sir / sar",
    "NaN frames agree",
    "RSS rise GB museval / ours",
    "CPU pressure",
)


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


def chorale_track(seconds: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """References (the four chorale voices, ``benchmarks.common.chorale_stems``) and estimates, ``(4, 2,
    samples)`` float64, contiguous (a strided view is slower to score); ``MissingContent`` without the set."""
    stems, rate = chorale_stems(seconds)
    if rate != SAMPLE_RATE:
        raise ValueError(f"expected {SAMPLE_RATE} Hz chorales, got {rate} Hz")
    ref = np.broadcast_to(stems, (stems.shape[0], CHANNELS, stems.shape[-1])).copy()  # contiguous, writable
    rng = np.random.default_rng(seed)
    leakage = 0.15 * (ref.sum(0, keepdims=True) - ref)
    est = 0.9 * ref + leakage + 0.01 * rng.standard_normal(ref.shape)
    return ref, est


def compare(ours: dict[str, torch.Tensor], theirs: tuple[np.ndarray, ...]) -> tuple[str, bool]:
    """``("d_sdr / d_isr / d_sir / d_sar", NaN frames agree)``: max |ours - museval| over museval's finite
    frames, per metric."""
    diffs, nan_ok = [], True
    for name, m in zip(METRICS, theirs, strict=True):
        a = ours[name].cpu().numpy()
        nan_ok &= bool((np.isnan(a) == np.isnan(m)).all())
        finite = np.isfinite(m)
        diffs.append(float(np.abs(a[finite] - m[finite]).max()) if finite.any() else 0.0)
    return " / ".join(f"{d:.1e}" for d in diffs), nan_ok


def _ours(ref: torch.Tensor, est: torch.Tensor, device: torch.device) -> tuple[float, float, dict]:
    """Best time, largest RSS rise (GB) and the result of ``REPEATS`` calls (CUDA: input transfer included)."""
    best, rise, out = float("inf"), 0.0, {}
    for _ in range(REPEATS):
        sec, peak, out = timed(
            bsseval, ref.to(device), est.to(device), win=44100, hop=44100, mode="v4", sync_cuda=True
        )
        best, rise = min(best, sec), max(rise, peak.rise_gb)
    return best, rise, out


def run(seconds: float, content: str) -> list[list[object]]:
    import museval

    ref, est = chorale_track(seconds) if content == "chorales" else synth_track(seconds)
    print(f"-- {content}, {seconds:.0f} s ...", file=sys.stderr, flush=True)
    t_museval, peak_museval, theirs = timed(
        museval.evaluate, ref.transpose(0, 2, 1), est.transpose(0, 2, 1), win=44100, hop=44100, mode="v4"
    )
    ref_t, est_t = torch.from_numpy(ref), torch.from_numpy(est)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
        n = 2 * SAMPLE_RATE
        bsseval(ref_t[..., :n].cuda(), est_t[..., :n].cuda())  # warm-up (CUDA context, kernels)
    rows: list[list[object]] = []
    for device in devices:
        t_ours, rise, ours = _ours(ref_t, est_t, device)
        diffs, nan_ok = compare(ours, theirs)
        rows.append(
            [
                content,
                f"{seconds:.0f} s",
                device.type,
                f"{t_museval:.2f}",
                f"{t_ours:.2f}",
                f"{t_museval / t_ours:.1f}x",
                diffs,
                nan_ok,
                f"{peak_museval.rise_gb:.2f} / {rise:.2f}",
                cpu_pressure(),
            ]
        )
    return rows


def main(quick: bool = False) -> None:
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; {SOURCES} sources, stereo, "
        f"{SAMPLE_RATE} Hz, win = hop = 44100, v4",
        flush=True,
    )
    rows: list[list[object]] = []
    for content in ("synthetic", "chorales"):
        for seconds in QUICK_DURATIONS if quick else DURATIONS:
            try:
                rows += run(seconds, content)
            except MissingContent as err:
                print(f"-- {content}: {err}; skipped", file=sys.stderr, flush=True)
                break
    print(table(HEADER, rows), flush=True)


if __name__ == "__main__":
    main()
