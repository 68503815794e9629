"""Shared pieces of the benchmarks: realistic content, peak-memory measurement, CPU pressure, tables.

Realistic content is the embedded chorale set (real instrument samples rendered by FluidSynth; ``make data``
writes it to ``$CHORALES_ROOT``, default ``data/chorales``) and its MP3 version (LAME, CBR), the same
material the datamodules train on. Synthetic signals alone flatter some code paths (smooth envelopes, no
silences), so every metric benchmark runs on both.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

CHORALES_ROOT = Path(os.environ.get("CHORALES_ROOT", "data/chorales"))
VOICES = ("soprano", "alto", "tenor", "bass")


class MissingContent(RuntimeError):
    """The chorale set is not there: run ``make data`` (or set ``$CHORALES_ROOT``)."""


def chorale_dirs(split: str = "test") -> list[Path]:
    """The track folders of ``split`` in the chorale set, sorted; ``MissingContent`` when absent."""
    folder = CHORALES_ROOT / split
    dirs = sorted(p for p in folder.glob("*") if (p / "mixture.wav").is_file()) if folder.is_dir() else []
    if not dirs:
        raise MissingContent(
            f"no chorale tracks under {folder}: run 'make data' first (or point $CHORALES_ROOT at the set)"
        )
    return dirs


def _concatenated(stem: str, seconds: float, split: str) -> tuple[np.ndarray, int]:
    parts, total, rate = [], 0, 0
    dirs = chorale_dirs(split)
    while True:  # cycle through the pieces until the requested length is reached
        for d in dirs:
            audio, rate = sf.read(d / f"{stem}.wav", dtype="float64", always_2d=True)
            parts.append(audio.T)
            total += audio.shape[0]
            if total >= seconds * rate:
                n = int(round(seconds * rate))
                return np.ascontiguousarray(np.concatenate(parts, axis=-1)[:, :n]), rate


def chorale_stems(seconds: float, split: str = "test") -> tuple[np.ndarray, int]:
    """``(4, channels, T)`` float64 voices (soprano, alto, tenor, bass) of ``seconds``: the split's pieces
    concatenated (cycled when the split is shorter), and the sample rate in Hz."""
    stems = [_concatenated(v, seconds, split) for v in VOICES]
    return np.stack([s for s, _ in stems]), stems[0][1]


def chorale_mixture(seconds: float, split: str = "test") -> tuple[np.ndarray, int]:
    """``(channels, T)`` float64 mixture of ``seconds`` (pieces concatenated) and its rate in Hz."""
    return _concatenated("mixture", seconds, split)


def mp3_version(audio: np.ndarray, sample_rate: int, bitrate: int = 32) -> np.ndarray:
    """``audio`` ``(channels, T)`` through LAME at ``bitrate`` kbit/s CBR and back, aligned, float64."""
    from musicbench.audio.mp3 import Mp3Codec

    codec = Mp3Codec(bitrate=bitrate, channels=audio.shape[0] if audio.shape[0] in (1, 2) else 2)
    return np.asarray(codec(audio.astype(np.float32), sample_rate), dtype=np.float64)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _high_water_mark() -> int:
    """``VmHWM`` of this process (peak resident set since start or the last reset), bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def _reset_high_water_mark() -> bool:
    """Reset ``VmHWM`` to the current resident set (Linux >= 4.0: ``5`` to ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class Peak:
    """Peak resident memory during a ``peak_rss()`` block: ``peak`` and the rise over the start, bytes."""

    start: int = 0
    peak: int = 0

    @property
    def rise_gb(self) -> float:
        return max(self.peak - self.start, 0) / 1e9

    @property
    def peak_gb(self) -> float:
        return self.peak / 1e9


@contextmanager
def peak_rss(interval: float = 0.002) -> Iterator[Peak]:
    """Yields a ``Peak`` filled in at exit: the largest resident set of this process during the block.

    On Linux the kernel's high-water mark is reset at entry and read at exit (exact, and free: a sampling
    thread would compete with the measured code for the cores and the GIL, measured to slow a 2-thread
    HAAQI call by 70 %). Where the reset is not allowed, a thread samples the resident set every
    ``interval`` s. (``ru_maxrss`` only ever grows over a process's life, so it cannot tell two runs in one
    process apart.) Outside Linux the figures stay 0."""
    result = Peak()
    if not Path("/proc/self/statm").exists():
        yield result
        return
    result.start = result.peak = _rss_bytes()
    if _reset_high_water_mark():
        try:
            yield result
        finally:
            result.peak = max(_high_water_mark(), result.start)
        return
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            result.peak = max(result.peak, _rss_bytes())
            time.sleep(interval)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        done.set()
        thread.join()
        result.peak = max(result.peak, _rss_bytes())


def cpu_pressure() -> str:
    """Linux PSI 'some avg10' for the CPU: the share of time runnable tasks waited for a core (other load)."""
    try:
        with open("/proc/pressure/cpu") as f:
            return f.readline().split()[1].split("=")[1] + "%"
    except OSError:
        return "n/a"


def timed(fn, *args, sync_cuda: bool = False, **kwargs):  # type: ignore[no-untyped-def]
    """``(seconds, peak, result)`` of ``fn(*args, **kwargs)``."""
    import torch

    with peak_rss() as peak:
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        if sync_cuda and torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    return seconds, peak, out


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (pipes), columns padded to their widest cell."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
