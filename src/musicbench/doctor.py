"""``make doctor`` / ``python -m musicbench.doctor``: what this environment runs, and what it can do.

Versions come from package metadata (nothing heavy is imported for them), so the report also works when
a broken install would fail at import. ``--short`` prints the one line ``make install`` ends with.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from musicbench._compat import installed_version, torch_pair_problem

# (label, distribution name) of the packages whose versions decide what a run computes.
CORE = [
    ("torch", "torch"),
    ("torchaudio", "torchaudio"),
    ("lightning", "pytorch-lightning"),
    ("hydra", "hydra-core"),
    ("numba", "numba"),
    ("numpy", "numpy"),
]
# (label, distribution name, what it enables).
OPTIONAL = [
    ("pyclarity", "pyclarity", "HAAQI/NAL-R parity tests against the Clarity/Cadenza reference"),
    ("museval", "museval", "BSSEval parity tests and museval JSON"),
    ("tinysoundfont", "tinysoundfont", "rendering the embedded chorale dataset (mb-data chorales)"),
]


def find_lock() -> Path | None:
    """The repo's ``uv.lock`` when musicbench runs from a clone (editable install), else None."""
    candidate = Path(__file__).resolve().parents[2] / "uv.lock"
    return candidate if candidate.is_file() else None


def lock_drift(lock: Path) -> tuple[int, list[str]]:
    """Compare installed versions with ``lock``: (number of locked packages installed, mismatches).

    The lock is universal (all platforms and Pythons), so packages it lists that are not installed here
    (e.g. Windows only) are not counted; a mismatch is ``"name installed X, locked Y"``.
    """
    locked: dict[str, set[str]] = {}
    for pkg in tomllib.loads(lock.read_text()).get("package", []):
        source = pkg.get("source", {})
        if "editable" in source or "virtual" in source:
            continue  # the project itself
        # A universal lock may hold several versions of one package (one per Python/platform fork).
        locked.setdefault(pkg["name"], set()).add(pkg["version"])
    checked, differ = 0, []
    for name, versions in sorted(locked.items()):
        have = installed_version(name)
        if have is None:
            continue
        checked += 1
        if have not in versions:
            differ.append(f"{name} installed {have}, locked {' or '.join(sorted(versions))}")
    return checked, differ


def ffmpeg_version() -> str:
    """First line of ``ffmpeg -version`` reduced to the version, or why there is none."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return "not found (museval/musdb need ffmpeg and ffprobe on PATH)"
    try:
        out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{exe} does not run: {exc}"
    words = out.split()
    return f"{words[2] if len(words) > 2 else '?'} ({exe})"


def device_report() -> tuple[str, str]:
    """(device line, CUDA feature line). Imports torch; a failed import is reported, not raised."""
    try:
        import torch
    except Exception as exc:  # a broken install is exactly what the doctor is for
        return f"torch does not import: {exc}", "unknown (torch does not import)"
    cpu = f"cpu: {os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads"
    build = torch.version.cuda
    if torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        return (
            f"{cpu}; cuda: {torch.cuda.device_count()} x {', '.join(names)}",
            f"available (CUDA {build}, {torch.cuda.device_count()} device(s))",
        )
    why = f"CUDA {build} build, no GPU visible" if build else "CPU-only torch build"
    return cpu, f"not available ({why}): GPU paths and gpu-marked tests are skipped"


def short_line() -> str:
    """One line: python, the core versions and the lock's state."""
    parts = [f"python {platform.python_version()}"]
    parts += [f"{label} {installed_version(dist) or 'missing'}" for label, dist in CORE[:5]]
    lock = find_lock()
    if lock is not None:
        _, differ = lock_drift(lock)
        digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:12]
        parts.append(
            f"uv.lock {digest}: " + ("all versions match" if not differ else f"{len(differ)} differ")
        )
    return ", ".join(parts)


def report() -> list[str]:
    """The full report, one line per item."""
    rows = [("python", f"{platform.python_version()} ({sys.executable})")]
    rows += [(label, installed_version(dist) or "missing") for label, dist in CORE]
    rows.append(("ffmpeg", ffmpeg_version()))
    device, cuda = device_report()
    rows.append(("device", device))
    pair = torch_pair_problem(installed_version("torch"), installed_version("torchaudio"))
    rows.append(("pair", pair or "ok (torchaudio is the build for this torch)"))
    lock = find_lock()
    if lock is not None:
        checked, differ = lock_drift(lock)
        state = f"{checked} installed packages match {lock}" if not differ else "; ".join(differ)
        rows.append(("uv.lock", state))
    rows.append(("CUDA", cuda))
    for label, dist, what in OPTIONAL:
        version = installed_version(dist)
        rows.append((label, f"{version}: {what}" if version else f"not installed: no {what}"))
    width = max(len(k) for k, _ in rows)
    return [f"{k:<{width}}  {v}" for k, v in rows]


def main(argv: list[str] | None = None) -> int:
    """Print the report (or ``--short`` line); exit 1 when torch/torchaudio or the lock are broken."""
    parser = argparse.ArgumentParser(prog="mb-doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="one line: python, core versions, lock state")
    args = parser.parse_args(argv)
    if args.short:
        print(short_line())
        return 0
    print("\n".join(report()))
    broken = torch_pair_problem(installed_version("torch"), installed_version("torchaudio"))
    lock = find_lock()
    return 1 if broken or (lock is not None and lock_drift(lock)[1]) else 0


if __name__ == "__main__":
    sys.exit(main())
