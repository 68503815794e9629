"""Non-finite audio in a dataset: training stops with a named error and writes no checkpoint."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicbench.utils.files import sha256_file

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def poison(root: Path, split: str, track: str, stem: str, every: int) -> Path:
    """Rewrite ``stem`` of ``track`` as float wav with NaN every ``every`` samples in channel 1, and record
    its new hash in the manifest (so only the NaN, not a hash mismatch, is what is wrong)."""
    path = root / split / track / f"{stem}.wav"
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    audio[every // 2 :: every, 1] = np.nan
    sf.write(path, audio, sr, subtype="FLOAT")
    manifest = json.loads((root / "manifest.json").read_text())
    for entry in manifest["tracks"]:
        if entry["name"] == track:
            entry["files"][path.name] = sha256_file(path)
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return path


def test_nan_stem_stops_training_without_checkpoint(tmp_path, tiny_chorales_root):
    root = tmp_path / "chorales"
    shutil.copytree(tiny_chorales_root, root)
    manifest = json.loads((root / "manifest.json").read_text())
    for track in manifest["splits"]["train"]:  # every chunk of every training track holds a NaN
        poison(root, "train", track, "alto", every=4000)
    out = tmp_path / "out"
    run = subprocess.run(
        [
            BIN / "mb-train",
            "debug=tiny",
            "callbacks.progress_bar=null",
            f"paths.chorales_root={root}",
            f"paths.output_dir={out}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert "alto.wav contains NaN at channel 1, sample" in run.stderr + run.stdout
    assert not list(out.rglob("*.ckpt"))
    assert not (out / "summary.json").exists()
