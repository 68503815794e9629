"""Integration: an expected failure of mb-train / mb-eval ends with one `error:` line and status 1."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
FULL_ERROR_HINT = "HYDRA_FULL_ERROR=1"


def _run(tool, *args, cwd, full_error=False):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    return subprocess.run([BIN / tool, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def test_wrong_type_names_the_key_before_any_work(tmp_path, tiny_chorales_root):
    out = tmp_path / "out"
    args = ["debug=tiny", f"paths.chorales_root={tiny_chorales_root}", f"paths.output_root={out}"]
    proc = _run("mb-train", *args, "data.batch_size=abc", cwd=tmp_path)
    assert proc.returncode == 1
    assert "full_key: data.batch_size" in proc.stderr and "'abc'" in proc.stderr
    assert "Traceback" not in proc.stderr and FULL_ERROR_HINT in proc.stderr
    assert not out.exists()  # stopped while composing: no run folder, no data read, no model built


def test_missing_dataset_root_is_one_line(tmp_path):
    missing = tmp_path / "no-such-dataset"
    args = ["debug=tiny", f"paths.chorales_root={missing}", f"paths.output_root={tmp_path / 'out'}"]
    proc = _run("mb-train", *args, cwd=tmp_path)
    assert proc.returncode == 1
    (line,) = _error_lines(proc.stderr)
    assert f"dataset root {missing} does not exist" in line
    assert "Traceback" not in proc.stderr and FULL_ERROR_HINT in proc.stderr

    full = _run("mb-train", *args, cwd=tmp_path, full_error=True)
    assert full.returncode != 0
    assert "Traceback (most recent call last)" in full.stderr and "MissingRootError" in full.stderr


def test_sweep_reports_the_failed_job(tmp_path):
    missing = tmp_path / "no-such-dataset"
    args = ["-m", "debug=tiny", f"paths.chorales_root={missing}", f"paths.output_root={tmp_path / 'out'}"]
    proc = _run("mb-train", *args, "seed=1,2", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Error executing job with overrides" in proc.stderr and "seed=" in proc.stderr
    assert _error_lines(proc.stderr) and "Traceback" not in proc.stderr


def test_unwritable_output_root(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = _run("mb-train", "debug=tiny", f"paths.output_root={blocker / 'out'}", cwd=tmp_path)
    assert proc.returncode == 1
    (line,) = _error_lines(proc.stderr)
    assert "cannot write the run folder" in line and str(blocker) in line and "paths.output_root" in line
    assert "Traceback" not in proc.stderr


def test_corrupt_checkpoint_is_named(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"PK\x03\x04 truncated")
    proc = _run("mb-eval", f"ckpt_path={ckpt}", f"paths.output_root={tmp_path / 'out'}", cwd=tmp_path)
    assert proc.returncode == 1
    (line,) = _error_lines(proc.stderr)
    assert f"cannot read checkpoint {ckpt}" in line
    assert "Traceback" not in proc.stderr
