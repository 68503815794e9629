"""Shared pieces of the GPU benchmark: sizes, measurement, formatting, content, the header."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import common
from benchmarks.common import timed

# Thresholds in dB HL at 250 ... 6000 Hz: a mild-to-moderate sloping loss.
AUDIOGRAM = [20.0, 30.0, 40.0, 50.0, 60.0, 65.0]
SECTIONS = ("haaqi", "bsseval", "metrics", "separation", "training")
PRESETS = {  # model -> experiment preset (conf/experiment/) that configures it and its batches
    "U-Net separator": "chorales_unet",
    "BLSTM restorer": "restore_lstm_mp3_32k",
    "GAN restorer": "restore_gan_mp3_32k",
}


@dataclass(frozen=True)
class Size:
    """How much work each section does (seconds of audio, training steps)."""

    haaqi_seconds: float  # each of the 8 signals of the timed batch
    haaqi_check_seconds: float  # the excerpt scored on both devices
    bsseval_seconds: float
    metrics_seconds: float
    separation_seconds: float
    chunk_seconds: float | None  # None: the preset's chunking (chunk, context, cross-fade)
    warmup_steps: int
    timed_steps: int
    train_batch: int | None  # None: the preset's batch size
    train_chunk_seconds: float | None  # None: the preset's training chunk
    warmup: bool  # an untimed call before each timed one (JIT caches, cuDNN algorithms, first-touch memory)
    repeats: int  # timed calls of a fast metric (their mean); the CPU beside CUDA: one


SIZES = {
    # A GPU: the full sizes (under 5 minutes, most of it museval on the CPU).
    "full": Size(30.0, 10.0, 180.0, 30.0, 180.0, None, 5, 50, None, None, True, 20),
    # The CPU fallback: same items, seconds of audio, a few steps (about 2 minutes on 2 cores).
    "cpu": Size(3.0, 1.0, 10.0, 10.0, 10.0, 4.0, 1, 2, None, None, True, 3),
    # The smallest run (a smoke test of every item; its times include first-call costs).
    "tiny": Size(0.5, 0.5, 2.0, 2.0, 3.0, 1.0, 0, 1, 1, 0.5, False, 1),
}


class Failures:
    """Items that raised: their rows say ``error: ...``, the run goes on and exits 1 at the end.

    A training whose loss turns non-finite (the models' ``FiniteGuard`` stops it) is a measured finding, not
    a failure of the benchmark: its row says so and the run still exits 0.
    """

    def __init__(self) -> None:
        self.items: list[str] = []
        self.findings: list[str] = []

    @contextlib.contextmanager
    def guard(self, item: str, row: list[object], width: int) -> Iterator[None]:
        from musicbench.models.base import NonFiniteTrainingError

        try:
            yield
        except NonFiniteTrainingError as exc:
            self.findings.append(f"{item}: {str(exc).split(':')[0]}")
            row[:] = [*row[:3], f"non-finite loss: {str(exc).split(':')[0]}"]
            row.extend([""] * (width - len(row)))
        except Exception as exc:  # one failed item must not hide the others' figures
            self.items.append(item)
            traceback.print_exc(file=sys.stderr)
            row[:] = [*row[:2], f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"]
            row.extend([""] * (width - len(row)))


# --- measurement -------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], Any], device: torch.device) -> tuple[float, str, Any]:
    """``(seconds, peak memory, result)`` of ``fn()``: torch's peak GPU allocation on CUDA, else the rise of
    the resident set (``common.timed``)."""
    if device.type != "cuda":
        seconds, peak, out = timed(fn)
        return seconds, f"RSS +{peak.rise_gb:.2f} GB", out
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    seconds, _, out = timed(fn, sync_cuda=True)
    return seconds, f"{torch.cuda.max_memory_allocated(device) / 1e9:.2f} GB", out


def accelerated(device: torch.device) -> bool:
    """Whether ``device`` is the accelerator under test, so that its rows get a CPU reference beside them."""
    return device.type != "cpu"


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_x(ratio: float) -> str:
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.1f}x"


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest |a - b| over entries finite in both (NaN/inf placement is checked apart: ``same_nonfinite``)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    keep = torch.isfinite(a) & torch.isfinite(b)
    return float((a[keep] - b[keep]).abs().max()) if keep.any() else 0.0


def same_nonfinite(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = a.detach().cpu(), b.detach().cpu()
    return bool(torch.equal(torch.isfinite(a), torch.isfinite(b)))


# --- content -----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def chorales_available(tracks: int = 3, seconds: float = 30.0) -> Iterator[str]:
    """Point ``common`` at a chorale set: ``$CHORALES_ROOT`` when it has one, else ``tracks`` chorales of at
    most ``seconds`` rendered into a temporary folder (a few seconds; the generator ships its soundfont,
    nothing is downloaded); all but one are the test split, whose pieces the sections cycle through."""
    try:
        common.chorale_dirs()
        yield str(common.CHORALES_ROOT)
        return
    except common.MissingContent:
        pass
    from musicbench.data.chorales import generate_chorales

    saved = common.CHORALES_ROOT
    with tempfile.TemporaryDirectory(prefix="mb-bench-gpu-") as tmp:
        generate_chorales(
            tmp, num_tracks=tracks, max_seconds=seconds, num_test=tracks - 1, num_valid=1, progress=False
        )
        common.CHORALES_ROOT = Path(tmp)
        try:
            yield f"{tmp} ({tracks} chorales rendered for this run)"
        finally:
            common.CHORALES_ROOT = saved


def estimates_of(stems: np.ndarray, seed: int = 0) -> np.ndarray:
    """Estimates of ``stems (S, C, T)`` a separator might give: 10 % crosstalk from the other sources and
    noise 40 dB below full scale."""
    rng = np.random.default_rng(seed)
    others = stems.sum(0, keepdims=True) - stems
    return 0.9 * stems + 0.1 * others / max(len(stems) - 1, 1) + 0.01 * rng.standard_normal(stems.shape)


# --- 1. HAAQI ----------------------------------------------------------------------------------------------


def header_lines(device: torch.device, size_name: str) -> list[str]:
    lines = [
        f"- torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}, "
        f"cuDNN {torch.backends.cudnn.version() or 'none'}, python {platform.python_version()}",
        f"- CPU: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"CPU pressure {common.cpu_pressure()}",
        f"- size: {size_name}",
    ]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        lines.insert(
            0, f"- device: {props.name}, {props.total_memory / 2**30:.0f} GiB, cc {props.major}.{props.minor}"
        )
        # The fp32 figures depend on these: cuDNN convolutions and RNNs run in TF32 by torch's default.
        with contextlib.suppress(AttributeError):
            b = torch.backends
            lines.insert(
                2,
                f"- fp32 precision: cuDNN conv {b.cudnn.conv.fp32_precision}, cuDNN RNN "
                f"{b.cudnn.rnn.fp32_precision}, matmul {b.cuda.matmul.fp32_precision}",
            )
    return lines
