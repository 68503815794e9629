"""GPU benchmark sections on models: U-Net separation inference and training steps per second."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from benchmarks.common import chorale_mixture, table, timed
from benchmarks.gpu import support
from benchmarks.gpu.support import PRESETS, Failures, Size, fmt_s, fmt_x, measure, sync


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
            target = " (target >= 1000x)" if support.accelerated(device) and "batched" in name else ""
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
