"""One-shot GPU benchmark: everything worth knowing from a few minutes on a GPU, as Markdown tables.

    make bench-gpu                       # = python -m benchmarks.gpu (also: python -m benchmarks --gpu)
    python -m benchmarks.gpu --size tiny # the smallest run (seconds of audio, one step): a smoke test

Sections (each prints one table):

1. HAAQI: a batch of 8 x 30 s (the four chorale voices, both channels) against their MP3 32 kbit/s
   versions in one ``haaqi(...)`` call; CUDA vs CPU scores on a shorter excerpt (same inputs on both).
2. BSSEval v4 on a 3-min 4-source stereo track: ``museval.evaluate`` (CPU) vs ``bsseval`` on CPU and CUDA in
   this process; the speed ratio, the largest difference to museval, CUDA vs CPU.
3. The SDR family and the restoration metrics: throughput and CUDA vs CPU.
4. U-Net separation of a 3-min stereo mixture by overlap-add of chunks (the model's ``chunked``), one chunk
   at a time and all chunks of one length in one batch, fp32 and bf16 autocast; real-time factor and the
   SDR between the estimates.
5. Training steps per second of the U-Net separator, the BLSTM restorer and the GAN restorer, built from the
   experiment presets (``conf/experiment/``) on random batches of the configured shape, fp32 and bf16-mixed.

Every row reports the peak memory of its item: GPU memory allocated by torch on CUDA, the rise of the
process's resident set on CPU. Without CUDA the same items run on the CPU in a reduced size (``--size cpu``:
seconds of audio, a few steps), after one line that says so. Nothing is downloaded: the chorale set is
read from ``$CHORALES_ROOT`` (``make data``) or, when it is absent, a small one is rendered into a
temporary folder. The exit status is 1 when an item failed (its row says why), else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from benchmarks import common
from benchmarks.common import chorale_mixture, chorale_stems, mp3_version, table, timed

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
def section_haaqi(size: Size, device: torch.device, failures: Failures) -> str:
    from musicbench.metrics.haaqi import haaqi

    stems, sr = chorale_stems(size.haaqi_seconds)
    coded = np.stack([mp3_version(s, sr, bitrate=32) for s in stems])
    # 8 mono signals: 4 voices x 2 channels.
    refs = torch.from_numpy(stems.reshape(-1, stems.shape[-1]))
    procs = torch.from_numpy(coded.reshape(-1, coded.shape[-1]))
    header = ["item", "device", "time", "per item", "x real time", "peak memory", "scores", "agreement"]
    rows = []
    row: list[object] = [f"batch {len(refs)} x {size.haaqi_seconds:g} s", device.type]
    with failures.guard("haaqi batch", row, len(header)):
        r, p = refs.to(device), procs.to(device)
        if size.warmup:  # kernels, caches, first-touch memory
            haaqi(r[:1], p[:1], sr, sr, AUDIOGRAM, seed=0)
        seconds, peak, scores = measure(lambda: haaqi(r, p, sr, sr, AUDIOGRAM, seed=0), device)
        audio = len(refs) * size.haaqi_seconds
        row += [
            fmt_s(seconds),
            fmt_s(seconds / len(refs)),
            fmt_x(audio / seconds),
            peak,
            f"{float(scores.min()):.3f} .. {float(scores.max()):.3f}",
            "target < 1 s total on GPU",
        ]
    rows.append(row)
    # Agreement: the same excerpt on both devices (CPU-only: the torch back end, which CUDA runs, vs numba).
    n = int(size.haaqi_check_seconds * sr)
    r, p = refs[:, :n], procs[:, :n]
    other = device.type if accelerated(device) else "cpu, torch back end"
    row = [f"batch {len(refs)} x {size.haaqi_check_seconds:g} s: {other} vs cpu", device.type]
    with failures.guard("haaqi agreement", row, len(header)):
        t_cpu, peak_cpu, cpu = measure(lambda: haaqi(r, p, sr, sr, AUDIOGRAM, seed=0), torch.device("cpu"))
        if accelerated(device):
            t_dev, peak_dev, dev = measure(
                lambda: haaqi(r.to(device), p.to(device), sr, sr, AUDIOGRAM, seed=0), device
            )
        else:
            t_dev, peak_dev, dev = measure(
                lambda: haaqi(r, p, sr, sr, AUDIOGRAM, seed=0, backend="torch"), device
            )
        row += [
            f"{fmt_s(t_dev)} / cpu {fmt_s(t_cpu)}",
            fmt_s(t_dev / len(refs)),
            fmt_x(len(refs) * size.haaqi_check_seconds / t_dev),
            f"{peak_dev} / cpu {peak_cpu}",
            f"{float(cpu.min()):.3f} .. {float(cpu.max()):.3f}",
            f"max abs diff {max_diff(dev, cpu):.1e}",
        ]
    rows.append(row)
    return table(header, rows)


# --- 2. BSSEval --------------------------------------------------------------------------------------------
def section_bsseval(size: Size, device: torch.device, failures: Failures) -> str:
    from musicbench.metrics.bsseval import METRICS, bsseval

    stems, sr = chorale_stems(size.bsseval_seconds)
    est = estimates_of(stems)
    ref_t, est_t = torch.from_numpy(stems), torch.from_numpy(est)
    header = ["implementation", "device", "time", "vs museval", "peak memory", "max abs diff vs museval (dB)"]
    rows: list[list[object]] = []
    what = f"{size.bsseval_seconds:g} s, {stems.shape[0]} sources, {stems.shape[1]} channels, {sr} Hz, v4"

    def diffs(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> str:
        parts = [f"{m} {max_diff(ours[m], theirs[m]):.1e}" for m in METRICS]
        nan_ok = all(same_nonfinite(ours[m], theirs[m]) for m in METRICS)
        return ", ".join(parts) + ("" if nan_ok else "; NaN frames differ")

    museval_row: list[object] = ["museval.evaluate", "cpu"]
    theirs: dict[str, torch.Tensor] | None = None
    t_museval = math.nan
    with failures.guard("museval", museval_row, len(header)):
        import museval

        t_museval, peak, out = measure(
            lambda: museval.evaluate(
                stems.transpose(0, 2, 1), est.transpose(0, 2, 1), win=sr, hop=sr, mode="v4"
            ),
            torch.device("cpu"),
        )
        theirs = {m: torch.from_numpy(np.asarray(v)) for m, v in zip(METRICS, out, strict=True)}
        museval_row += [fmt_s(t_museval), "1x", peak, ""]
    rows.append(museval_row)

    def ours_on(dev: torch.device) -> tuple[float, str, dict[str, torch.Tensor]]:
        # Warm-up on 2 s (kernels, FFT plans), then the whole track, transfers included.
        if size.warmup:
            bsseval(ref_t[..., : 2 * sr], est_t[..., : 2 * sr], win=sr, hop=sr, device=dev)
        return measure(lambda: bsseval(ref_t.to(dev), est_t.to(dev), win=sr, hop=sr, mode="v4"), dev)

    cpu_out: dict[str, torch.Tensor] | None = None
    # The CPU first (the reference of the device's row), then the accelerator.
    devices = [torch.device("cpu")] + ([device] if accelerated(device) else [])
    for i, dev in enumerate(devices):
        row: list[object] = ["musicbench bsseval", dev.type]
        with failures.guard(f"bsseval {dev.type}", row, len(header)):
            seconds, peak, out = ours_on(dev)
            ratio = t_museval / seconds
            target = " (target >= 100x)" if i > 0 else ""
            row += [fmt_s(seconds), f"{fmt_x(ratio)}{target}", peak, diffs(out, theirs) if theirs else "n/a"]
            if i == 0:
                cpu_out = out
            elif cpu_out is not None:
                worst = max(max_diff(out[m], cpu_out[m]) for m in METRICS)
                row[-1] = f"{row[-1]}; {dev.type} vs cpu: {worst:.1e}"
        rows.append(row)
    return f"{what}\n\n{table(header, rows)}"


# --- 3. SDR family and restoration metrics ---------------------------------------------------------------
def section_metrics(size: Size, device: torch.device, failures: Failures) -> str:
    from musicbench.metrics.restoration import improvement, log_spectral_distance
    from musicbench.metrics.sdr import global_sdr, si_sdr, snr

    stems, sr = chorale_stems(size.metrics_seconds)
    ref_np = stems.astype(np.float32)
    est_np = estimates_of(stems).astype(np.float32)
    ref, est = torch.from_numpy(ref_np), torch.from_numpy(est_np)
    degraded = torch.from_numpy(np.stack([mp3_version(s, sr, bitrate=32) for s in stems]).astype(np.float32))

    def lsd(r: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return log_spectral_distance(r, e, sr)

    metrics: dict[str, Callable[..., torch.Tensor]] = {
        "global_sdr": global_sdr,
        "snr": snr,
        "si_sdr": si_sdr,
        "log_spectral_distance": lsd,
        "improvement(si_sdr)": lambda r, e, d: improvement(si_sdr, r, e, d),
        "improvement(lsd)": lambda r, e, d: improvement(lsd, r, e, d),
    }
    header = ["metric", "device", "time per call", "x real time", "peak memory", "values", "device vs cpu"]
    rows = []
    audio = stems.shape[0] * size.metrics_seconds  # seconds of (stereo) audio scored per call
    for name, fn in metrics.items():
        args = (ref, est, degraded) if name.startswith("improvement") else (ref, est)
        cpu_values: torch.Tensor | None = None
        devices = [torch.device("cpu")] + ([device] if accelerated(device) else [])
        for i, dev in enumerate(devices):
            row: list[object] = [name, dev.type]
            with failures.guard(f"{name} {dev.type}", row, len(header)):
                inputs = [a.to(dev) for a in args]
                # Beside the accelerator the CPU only gives the reference values: one call, no warm-up.
                repeats = 1 if i < len(devices) - 1 else size.repeats
                if repeats > 1 and size.warmup:
                    fn(*inputs)
                seconds, peak, values = measure(
                    lambda fn=fn, inputs=inputs, repeats=repeats: [fn(*inputs) for _ in range(repeats)], dev
                )
                values = values[-1]
                per_call = seconds / repeats
                if i == 0:
                    cpu_values = values
                    agreement = "" if accelerated(device) else "n/a (no CUDA)"
                else:
                    agreement = f"max abs diff {max_diff(values, cpu_values):.1e}"
                row += [
                    fmt_s(per_call),
                    fmt_x(audio / per_call),
                    peak,
                    f"{float(values.min()):.2f} .. {float(values.max()):.2f} dB",
                    agreement,
                ]
            rows.append(row)
    return (
        f"{stems.shape[0]} sources x {stems.shape[1]} channels x {size.metrics_seconds:g} s per call\n\n"
        + table(header, rows)
    )


# --- models from the presets --------------------------------------------------------------------------------
def compose_preset(experiment: str, overrides: list[str] | None = None) -> Any:
    """The ``train`` config of an experiment preset, composed as ``mb-train experiment=...`` would."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from musicbench.utils.config import CONFIG_DIR, register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with tempfile.TemporaryDirectory() as tmp:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(
                "train",
                overrides=[
                    f"experiment={experiment}",
                    f"paths.output_dir={tmp}",
                    f"paths.chorales_root={tmp}",
                    f"paths.musdb_root={tmp}",
                    *(overrides or []),
                ],
            )
    GlobalHydra.instance().clear()
    return cfg


def build_model(experiment: str, overrides: list[str] | None = None) -> tuple[Any, Any]:
    import hydra

    cfg = compose_preset(experiment, overrides)
    torch.manual_seed(0)
    return cfg, hydra.utils.instantiate(cfg.model)


# --- 4. U-Net separation ------------------------------------------------------------------------------------
def batched_chunked(model: Any, audio: torch.Tensor, max_batch: int) -> torch.Tensor:
    """``model.separate(audio)`` with the chunks of one length run as one batch (at most ``max_batch``).

    The chunking is the model's own (``System.chunked``): a first pass records the windows it reads, they go
    through ``model.estimate`` in batches, and a second pass overlap-adds the results in the same order.
    """
    windows: list[torch.Tensor] = []

    def record(x: torch.Tensor) -> torch.Tensor:
        windows.append(x)
        return x[:, :1]  # the length is all the first pass needs

    with torch.no_grad():
        model.chunked(record, audio)
        by_length: dict[int, list[int]] = {}
        for i, w in enumerate(windows):
            by_length.setdefault(w.shape[-1], []).append(i)
        outputs: list[torch.Tensor | None] = [None] * len(windows)
        for idx in by_length.values():
            for lo in range(0, len(idx), max_batch):
                part = idx[lo : lo + max_batch]
                ys = model.estimate(torch.cat([windows[i] for i in part])).split(audio.shape[0])
                for i, y in zip(part, ys, strict=True):
                    outputs[i] = y
        queue = iter(outputs)
        return model.chunked(lambda x: next(queue), audio)


def section_separation(size: Size, device: torch.device, failures: Failures) -> str:
    from musicbench.metrics.sdr import global_sdr

    overrides = []
    if size.chunk_seconds is not None:
        c = size.chunk_seconds
        overrides = [
            f"model.chunk_seconds={c}",
            f"model.context_seconds={c / 4}",
            f"model.crossfade_seconds={c / 8}",
        ]
    cfg, model = build_model(PRESETS["U-Net separator"], overrides)
    model = model.to(device).eval()
    mix_np, sr = chorale_mixture(size.separation_seconds)
    mix = torch.from_numpy(mix_np.astype(np.float32))[None].to(device)
    seconds_audio = mix.shape[-1] / sr
    m = cfg.model
    what = (
        f"{seconds_audio:g} s stereo mixture at {sr} Hz; preset {PRESETS['U-Net separator']} (n_fft {m.n_fft}, "
        f"hop {m.hop_length}, max_bin {m.max_bin}); chunks of {model.chunk_seconds:g} s + {model.context_seconds:g} s "
        f"context each side, {model.crossfade_seconds:g} s cross-fades; untrained weights (seeded)"
    )
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    runs: dict[str, Callable[[], torch.Tensor]] = {
        "fp32, one chunk at a time": lambda: model.separate(mix),
        "fp32, batched chunks": lambda: batched_chunked(model, mix, 16),
    }

    def bf16() -> torch.Tensor:
        with autocast:
            return batched_chunked(model, mix, 16)

    runs["bf16 autocast, batched chunks"] = bf16
    header = ["inference", "device", "time", "x real time", "peak memory", "SDR vs fp32 one at a time"]
    rows = []
    reference: torch.Tensor | None = None
    for name, run in runs.items():
        row: list[object] = [name, device.type]
        with failures.guard(f"separation {name}", row, len(header)):
            if size.warmup:  # cuDNN algorithm choice, allocator
                run()
            seconds, peak, out = measure(run, device)
            out = out.float()
            if reference is None:
                reference, agreement = out, "(reference)"
            else:
                agreement = f"{float(global_sdr(reference, out).mean()):.1f} dB"
            target = " (target >= 1000x)" if accelerated(device) and "batched" in name else ""
            row += [fmt_s(seconds), fmt_x(seconds_audio / seconds) + target, peak, agreement]
        rows.append(row)
    return f"{what}\n\n{table(header, rows)}"


# --- 5. training steps --------------------------------------------------------------------------------------
class _StepTimer(pl.Callback):
    """Lightning callback: the wall time of the batches after the ``warmup`` first ones, up to the end of
    batch ``total`` (synchronised at both ends only, so the GPU's queue stays full in between)."""

    def __init__(self, warmup: int, total: int, device: torch.device) -> None:
        self.warmup, self.total, self.device = warmup, total, device
        self.t0 = self.t1 = math.nan
        self.batches = 0

    def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            sync(self.device)
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.batches = batch_idx + 1
        if self.batches == self.total:
            sync(self.device)
            self.t1 = time.perf_counter()


class _RandomBatches(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """``length`` items cycling through a fixed pool of random examples (no per-step generation cost)."""

    def __init__(self, pool: list[tuple[torch.Tensor, ...]], length: int) -> None:
        self.pool, self.length = pool, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return self.pool[i % len(self.pool)]


def train_steps(experiment: str, precision: str, size: Size, device: torch.device) -> tuple[float, str, str]:
    """``(steps per second, peak memory, batch shape)`` of training a preset's model on random batches."""
    cfg, model = build_model(experiment)
    data = cfg.data
    batch = size.train_batch or int(data.batch_size)
    chunk = size.train_chunk_seconds or float(data.chunk_seconds)
    channels = int(cfg.model.audio_channels)
    samples = int(chunk * int(data.sample_rate))
    g = torch.Generator().manual_seed(0)
    if experiment == PRESETS["U-Net separator"]:
        sources = len(data.sources)
        pool = [
            (
                0.1 * torch.randn(sources, channels, samples, generator=g).sum(0),
                0.1 * torch.randn(sources, channels, samples, generator=g),
            )
            for _ in range(batch)
        ]
        shape = (
            f"mixture ({batch}, {channels}, {samples}), targets ({batch}, {sources}, {channels}, {samples})"
        )
    else:  # restorers: (degraded, clean[None])
        pool = []
        for _ in range(batch):
            clean = 0.1 * torch.randn(channels, samples, generator=g)
            pool.append((clean + 0.01 * torch.randn(channels, samples, generator=g), clean[None]))
        shape = f"degraded ({batch}, {channels}, {samples}), clean ({batch}, 1, {channels}, {samples})"
    steps = size.warmup_steps + size.timed_steps
    loader = torch.utils.data.DataLoader(_RandomBatches(pool, steps * batch), batch_size=batch)
    timer = _StepTimer(size.warmup_steps, steps, device)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = pl.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            precision=precision,
            max_epochs=1,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp,
            callbacks=[timer],
        )
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            trainer.fit(model, loader)
            peak = f"{torch.cuda.max_memory_allocated(device) / 1e9:.2f} GB"
        else:
            _, rss, _ = timed(trainer.fit, model, loader)
            peak = f"RSS +{rss.rise_gb:.2f} GB"
    if timer.batches != steps:
        raise RuntimeError(f"ran {timer.batches} of {steps} batches")
    return size.timed_steps / (timer.t1 - timer.t0), peak, shape


def section_training(size: Size, device: torch.device, failures: Failures) -> str:
    header = ["model", "device", "precision", "steps/s", "time per step", "peak memory", "batch"]
    rows = []
    for model_name, experiment in PRESETS.items():
        for precision in ("32-true", "bf16-mixed"):
            row: list[object] = [model_name, device.type, precision]
            with failures.guard(f"training {model_name} {precision}", row, len(header)):
                rate, peak, shape = train_steps(experiment, precision, size, device)
                row += [f"{rate:.2f}", fmt_s(1 / rate), peak, shape]
            rows.append(row)
    what = (
        f"{size.warmup_steps} warm-up + {size.timed_steps} timed steps per row (a Lightning Trainer on random "
        "batches); presets: " + ", ".join(f"{k}: {v}" for k, v in PRESETS.items())
    )
    return f"{what}\n\n{table(header, rows)}"


# --- entry point --------------------------------------------------------------------------------------------
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


RUNNERS = {
    "haaqi": ("HAAQI: batch of 8 chorale stems vs MP3 32 kbit/s", section_haaqi),
    "bsseval": ("BSSEval v4: museval vs musicbench", section_bsseval),
    "metrics": ("SDR family and restoration metrics", section_metrics),
    "separation": ("U-Net separation inference", section_separation),
    "training": ("Training steps per second", section_training),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), help="default: full on CUDA, cpu without")
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", help="run only this section (repeatable)"
    )
    args = parser.parse_args(argv)
    with quiet_lightning():
        return run_sections(args.size, args.only or SECTIONS)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's banners and hints (GPU available, no val loader, few workers) would bury the tables;
    its errors still show. The logging levels and warning filters are restored afterwards."""
    loggers = [logging.getLogger(name) for name in ("pytorch_lightning", "lightning", "lightning_fabric")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="pytorch_lightning")
        warnings.filterwarnings("ignore", module="lightning_fabric")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def run_sections(size_arg: str | None, sections: Sequence[str]) -> int:
    """Print the header and the tables of ``sections``; 1 when an item failed, else 0."""
    t_start = time.perf_counter()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda") if cuda else torch.device("cpu")
    size_name = size_arg or ("full" if cuda else "cpu")
    size = SIZES[size_name]
    print("# musicbench GPU benchmark\n", flush=True)
    if not cuda:
        print(
            f"no CUDA device: torch {torch.__version__} sees none (torch.cuda.is_available() is False); "
            f"CPU figures follow, size {size_name}",
            flush=True,
        )
    print("\n".join(header_lines(device, size_name)), flush=True)
    failures = Failures()
    with chorales_available(*((2, 10.0) if size_name == "tiny" else (3, 30.0))) as root:
        print(f"- chorales: {root}\n", flush=True)
        for key in sections:
            title, run = RUNNERS[key]
            t0 = time.perf_counter()
            print(f"## {title}\n", flush=True)
            try:
                body = run(size, device, failures)
            except Exception as exc:  # the section's setup failed (content, config): report, go on
                failures.items.append(key)
                traceback.print_exc(file=sys.stderr)
                body = f"error: {type(exc).__name__}: {exc}"
            print(f"{body}\n\n({key}: {time.perf_counter() - t0:.1f} s)\n", flush=True)
    print(f"total: {time.perf_counter() - t_start:.1f} s", flush=True)
    for finding in failures.findings:
        print(f"finding: {finding}", flush=True)
    if failures.items:
        print(f"failed: {', '.join(failures.items)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
