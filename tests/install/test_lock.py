"""The environment is the one uv.lock describes, and uv.lock agrees with pyproject.toml."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from musicbench import doctor

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "uv.lock"
UV = Path(sys.executable).with_name("uv")  # bootstrapped by make install at the locked version


def _locked() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for pkg in tomllib.loads(LOCK.read_text())["package"]:
        out.setdefault(pkg["name"], set()).add(pkg["version"])
    return out


def test_lock_agrees_with_pyproject():
    env = dict(os.environ, UV_PYTHON=sys.executable, UV_PYTHON_DOWNLOADS="never")
    done = subprocess.run([UV, "lock", "--check"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"uv.lock is out of date with pyproject.toml (run make lock):\n{done.stderr}"


def test_lock_pins_the_known_good_torch_pair_and_uv_itself():
    locked = _locked()
    assert locked["torch"] == {"2.11.0"} and locked["torchaudio"] == {"2.11.0"}
    assert UV.exists(), "make install bootstraps uv into the venv"
    uv_version = subprocess.run([UV, "--version"], capture_output=True, text=True).stdout.split()[1]
    assert locked["uv"] == {uv_version}


def test_every_locked_package_wheel_has_a_hash():
    for pkg in tomllib.loads(LOCK.read_text())["package"]:
        if "registry" not in pkg.get("source", {}):
            continue
        files = pkg.get("wheels", []) + ([pkg["sdist"]] if "sdist" in pkg else [])
        assert files and all(f.get("hash", "").startswith("sha256:") for f in files), pkg["name"]


def test_installed_versions_are_the_locked_ones():
    checked, differ = doctor.lock_drift(LOCK)
    assert checked > 100  # torch, lightning, hydra, ... and their dependencies
    assert differ == []
    locked = _locked()
    import torch
    import torchaudio

    assert torch.__version__.split("+")[0] in locked["torch"]
    assert torchaudio.__version__.split("+")[0] in locked["torchaudio"]
