"""Tiny datasets in the MUSDB18-HQ layout, written as float wav so that values survive exactly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

SR = 8000  # a low rate keeps the wav tests fast; the stem test uses 44100 (what AAC/MUSDB18 use)
SATB = ["soprano", "alto", "tenor", "bass"]
MUSDB = ["drums", "bass", "other", "vocals"]

# A source generator returns (channels, samples) audio for (track index, source index, samples).
SourceFn = Callable[[int, int, int], np.ndarray]


def tonal(k: int, s: int, frames: int) -> np.ndarray:
    """A stereo tone per (track, source) plus a little noise: distinct, never silent."""
    t = np.arange(frames) / SR
    rng = np.random.default_rng(100 * k + s)
    tone = 0.2 * np.sin(2 * np.pi * (110.0 * (s + 1) + 7.0 * k) * t)
    return np.stack([tone, 0.5 * tone]) + 0.01 * rng.standard_normal((2, frames))


def dc_level(k: int, s: int, frames: int) -> np.ndarray:
    """Constant levels that identify the track and source: left = 0.01 (k + 1) + 0.1 s, right = half."""
    value = 0.01 * (k + 1) + 0.1 * s
    return np.stack([np.full(frames, value), np.full(frames, value / 2)])


def write_track(
    folder: Path, sources: list[str], frames: int, k: int = 0, fn: SourceFn = tonal, sr: int = SR
) -> None:
    """Write ``<folder>/{mixture,<source>...}.wav``."""
    folder.mkdir(parents=True, exist_ok=True)
    stems = [fn(k, s, frames) for s in range(len(sources))]
    for name, audio in zip(sources, stems, strict=True):
        sf.write(folder / f"{name}.wav", audio.T, sr, subtype="FLOAT")
    sf.write(folder / "mixture.wav", np.sum(stems, axis=0).T, sr, subtype="FLOAT")


def write_tone(path: Path, seconds: float = 1.0, freq: float = 440.0, sr: int = 44100) -> Path:
    """A stereo tone file (left 0.3, right 0.15 amplitude) in any format soundfile writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * freq * t)
    sf.write(path, np.stack([tone, 0.5 * tone]).T, sr)
    return path


def make_root(
    root: Path,
    train: list[str],
    test: list[str],
    sources: list[str],
    seconds: float = 1.0,
    manifest: dict | None = None,
    fn: SourceFn = tonal,
) -> Path:
    """A dataset root with the ``train`` and ``test`` tracks (``seconds`` long at ``SR``)."""
    frames = int(seconds * SR)
    for k, name in enumerate(train):
        write_track(root / "train" / name, sources, frames, k, fn)
    for k, name in enumerate(test):
        write_track(root / "test" / name, sources, frames, 100 + k, fn)
    if manifest is not None:
        (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture
def layout() -> SimpleNamespace:
    """The helpers above, for tests that build their own dataset (``layout.make_root(...)``)."""
    return SimpleNamespace(
        SR=SR,
        SATB=SATB,
        MUSDB=MUSDB,
        tonal=tonal,
        dc_level=dc_level,
        write_track=write_track,
        write_tone=write_tone,
        make_root=make_root,
    )


@pytest.fixture
def chorale_root(tmp_path: Path) -> Path:
    """3 train tracks (one of them validation, per the manifest) + 2 test tracks, SATB, 1 s at 8 kHz."""
    manifest = {"name": "tiny", "sources": SATB, "sample_rate": SR, "validation_tracks": ["c"]}
    return make_root(tmp_path / "chorales", ["a", "b", "c"], ["t1", "t2"], SATB, manifest=manifest)


@pytest.fixture
def plain_root(tmp_path: Path) -> Path:
    """No manifest, MUSDB source names: 3 train + 2 test tracks, 1 s at 8 kHz."""
    return make_root(tmp_path / "musdb", ["a", "b", "c"], ["t1", "t2"], MUSDB)
