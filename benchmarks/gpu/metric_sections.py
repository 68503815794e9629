"""GPU benchmark sections on metrics: HAAQI, BSSEval, the SDR family and the restoration metrics."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from benchmarks.common import chorale_stems, mp3_version, table
from benchmarks.gpu import support
from benchmarks.gpu.support import (
    AUDIOGRAM,
    Failures,
    Size,
    estimates_of,
    fmt_s,
    fmt_x,
    max_diff,
    measure,
    same_nonfinite,
)


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
    other = device.type if support.accelerated(device) else "cpu, torch back end"
    row = [f"batch {len(refs)} x {size.haaqi_check_seconds:g} s: {other} vs cpu", device.type]
    with failures.guard("haaqi agreement", row, len(header)):
        t_cpu, peak_cpu, cpu = measure(lambda: haaqi(r, p, sr, sr, AUDIOGRAM, seed=0), torch.device("cpu"))
        if support.accelerated(device):
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
    devices = [torch.device("cpu")] + ([device] if support.accelerated(device) else [])
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
        devices = [torch.device("cpu")] + ([device] if support.accelerated(device) else [])
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
                    agreement = "" if support.accelerated(device) else "n/a (no CUDA)"
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
