"""The GPU benchmark's command line: the header, then each section's table."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence

import torch

from benchmarks.gpu.metric_sections import section_bsseval, section_haaqi, section_metrics
from benchmarks.gpu.model_sections import section_separation, section_training
from benchmarks.gpu.support import SECTIONS, SIZES, Failures, chorales_available, header_lines

RUNNERS = {
    "haaqi": ("HAAQI: batch of 8 chorale stems vs MP3 32 kbit/s", section_haaqi),
    "bsseval": ("BSSEval v4: museval vs musicbench", section_bsseval),
    "metrics": ("SDR family and restoration metrics", section_metrics),
    "separation": ("U-Net separation inference", section_separation),
    "training": ("Training steps per second", section_training),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu", description="One-shot GPU benchmark (python -m benchmarks.gpu)"
    )
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
