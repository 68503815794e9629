"""``make doctor``: versions, device and optional features."""

from __future__ import annotations

import subprocess
import sys

import torch

from musicbench._compat import installed_version


def _doctor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "musicbench.doctor", *args], capture_output=True, text=True, timeout=120
    )


def test_report_names_versions_device_and_features():
    done = _doctor()
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split()[0]: line.split(None, 1)[1] for line in done.stdout.splitlines()}
    assert rows["torch"] == torch.__version__.split("+")[0]
    assert rows["torchaudio"] == installed_version("torchaudio")
    assert rows["lightning"] == installed_version("pytorch-lightning")
    assert rows["hydra"] == installed_version("hydra-core")
    assert rows["numba"] == installed_version("numba")
    assert rows["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    assert "ffmpeg" in rows and "device" in rows
    assert rows["CUDA"].startswith("available" if torch.cuda.is_available() else "not available")
    assert rows["pyclarity"].startswith(installed_version("pyclarity"))
    assert rows["pair"].startswith("ok")
    assert "match" in rows["uv.lock"]


def test_short_line_for_make_install():
    done = _doctor("--short")
    assert done.returncode == 0
    line = done.stdout.strip()
    assert "\n" not in line
    assert f"torch {torch.__version__.split('+')[0]}," in line and "all versions match" in line
