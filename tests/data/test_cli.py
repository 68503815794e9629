"""``mb-data``: the chorales, verify and info subcommands, called directly and as a console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from musicbench.data.cli import main
from musicbench.data.manifest import load_manifest

VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def dataset_copy(tiny_chorales_root, tmp_path) -> Path:
    """A private copy of the session's tiny dataset, free to damage."""
    root = tmp_path / "chorales"
    shutil.copytree(tiny_chorales_root, root)
    return root


def test_chorales_command_generates_and_summarises(tmp_path, capsys):
    root = tmp_path / "ds"
    args = ["chorales", "--root", str(root), "--num-tracks", "3", "--max-seconds", "2", "--num-test", "1"]
    assert main([*args, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "3 tracks" in out and "train: 2" in out and "test: 1" in out and "MB" in out
    m = load_manifest(root)
    assert m["generator"]["params"]["max_seconds"] == 2.0 and len(m["validation_tracks"]) == 1


def test_verify_ok(tiny_chorales_root, capsys):
    assert main(["verify", "--root", str(tiny_chorales_root)]) == 0
    assert "OK: 30 files" in capsys.readouterr().out


def test_verify_reports_corrupted_and_missing_files(dataset_copy, capsys):
    track = load_manifest(dataset_copy)["tracks"][0]
    track_dir = dataset_copy / track["split"] / track["name"]
    data = bytearray((track_dir / "bass.wav").read_bytes())
    data[5000] ^= 0xFF  # one flipped byte in the samples
    (track_dir / "bass.wav").write_bytes(bytes(data))
    (track_dir / "tenor.wav").unlink()
    assert main(["verify", "--root", str(dataset_copy)]) == 1
    out = capsys.readouterr().out
    assert "2 problem(s)" in out
    assert f"hash mismatch: {track_dir / 'bass.wav'}" in out
    assert f"missing file: {track_dir / 'tenor.wav'}" in out


def test_verify_without_manifest_fails_clearly(tmp_path, capsys):
    assert main(["verify", "--root", str(tmp_path)]) == 1
    assert "no manifest at" in capsys.readouterr().err


def test_info_from_manifest(tiny_chorales_root, capsys):
    assert main(["info", "--root", str(tiny_chorales_root)]) == 0
    out = capsys.readouterr().out
    m = load_manifest(tiny_chorales_root)
    assert all(t["name"] in out for t in m["tracks"]) and "train (valid)" in out and "6 tracks" in out


def test_info_on_musdb_layout_without_manifest(dataset_copy, capsys):
    (dataset_copy / "manifest.json").unlink()
    assert main(["info", "--root", str(dataset_copy)]) == 0
    out = capsys.readouterr().out
    assert "no manifest" in out and "6 tracks" in out
    assert "alto, bass, mixture, soprano, tenor" in out


def test_info_on_empty_folder_fails(tmp_path, capsys):
    assert main(["info", "--root", str(tmp_path)]) == 1
    assert "neither manifest.json nor train/ or test/" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["chorales", "--root", "x"],  # --num-tracks missing
        ["chorales", "--root", "x", "--num-tracks", "0"],
        ["chorales", "--root", "x", "--num-tracks", "two"],
        ["verify"],
        ["nonsense", "--root", "x"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage: mb-data" in capsys.readouterr().err


def test_invalid_split_sizes_exit_1(tmp_path, capsys):
    argv = ["chorales", "--root", str(tmp_path), "--num-tracks", "2", "--num-test", "1", "--num-valid", "3"]
    assert main([*argv, "--no-progress"]) == 1
    assert "num_valid" in capsys.readouterr().err


def test_console_script(tiny_chorales_root, dataset_copy):
    script = VENV_BIN / "mb-data"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "musicbench.data.cli"]
    ok = subprocess.run([*cmd, "verify", "--root", str(tiny_chorales_root)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    (dataset_copy / "train" / load_manifest(dataset_copy)["splits"]["train"][0] / "soprano.wav").write_bytes(
        b"x"
    )
    bad = subprocess.run([*cmd, "verify", "--root", str(dataset_copy)], capture_output=True, text=True)
    assert bad.returncode == 1 and "hash mismatch" in bad.stdout
    usage = subprocess.run([*cmd, "chorales"], capture_output=True, text=True)
    assert usage.returncode == 2 and "--root" in usage.stderr
