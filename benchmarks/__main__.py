"""Run every ``benchmarks/bench_*.py`` module: ``python -m benchmarks [--only NAME] [--quick]``.

``python -m benchmarks --gpu [--size tiny|cpu|full]`` runs the one-shot GPU benchmark (``benchmarks/gpu/``).

Each module exposes ``main(quick: bool) -> None`` and prints its own table.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path


def discover() -> list[str]:
    """Names of the benchmark modules (``bench_*``), without the prefix, sorted."""
    here = Path(__file__).resolve().parent
    return sorted(
        m.name[len("bench_") :] for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--gpu" in argv:  # its own options (--size, --only SECTION): benchmarks/gpu/run.py parses the rest
        from benchmarks.gpu import main as gpu_main

        return gpu_main([a for a in argv if a != "--gpu"])
    names = discover()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", choices=names, action="append", help="run only this benchmark (repeatable)")
    parser.add_argument("--quick", action="store_true", help="short inputs only (a smoke run)")
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="run the one-shot GPU benchmark instead (benchmarks/gpu/, see python -m benchmarks.gpu -h)",
    )
    args = parser.parse_args(argv)
    failed = []
    for name in args.only or names:
        print(f"=== benchmark: {name}{' (quick)' if args.quick else ''} ===", flush=True)
        t0 = time.perf_counter()
        try:
            importlib.import_module(f"benchmarks.bench_{name}").main(quick=args.quick)
        except Exception:  # keep running the others; report at the end
            failed.append(name)
            traceback.print_exc()
        print(f"=== {name}: {time.perf_counter() - t0:.1f} s ===\n", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
