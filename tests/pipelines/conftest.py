"""A tiny CAD1 Task 1 dataset in the challenge's exact layout (generated, a few seconds per song)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicbench.audio.testsignals import music_like
from musicbench.data.cadenza import STEMS
from musicbench.hearing import Audiogram, Listener, save_listeners

CFS = [250, 500, 1000, 2000, 3000, 4000, 6000, 8000]
LISTENERS = {
    "L0001": ([10, 10, 15, 20, 30, 40, 50, 55], [15, 15, 20, 25, 35, 45, 50, 60]),  # sloping: moderate
    "L0002": ([30, 35, 45, 55, 60, 65, 70, 75], [35, 40, 45, 60, 65, 70, 75, 80]),  # severe
}


def make_cad1_root(root: Path, songs: dict[str, str], seconds: float = 2.0, split: str = "valid") -> Path:
    """Write ``songs`` (``{name: "train" | "test"}``, the audio folder) as 16-bit stereo 44.1 kHz stems and
    mixtures, the listeners above and the metadata of ``split`` (test: with segments) under ``root``."""
    for k, (name, folder) in enumerate(songs.items()):
        song_dir = root / "audio" / "musdb18hq" / folder / name
        song_dir.mkdir(parents=True, exist_ok=True)
        stems = {
            stem: np.stack(
                [music_like(seconds, 44100, seed=100 * k + 2 * j + c, amplitude=0.04) for c in (0, 1)], 1
            )
            for j, stem in enumerate(STEMS)
        }
        stems = {s: np.round(x * 32768).astype(np.int16) for s, x in stems.items()}
        mixture = sum(x.astype(np.int32) for x in stems.values())
        for stem, pcm in {**stems, "mixture": np.clip(mixture, -32768, 32767).astype(np.int16)}.items():
            sf.write(song_dir / f"{stem}.wav", pcm, 44100, subtype="PCM_16")
    meta = root / "metadata"
    meta.mkdir(parents=True, exist_ok=True)
    save_listeners(
        [
            Listener(lid, Audiogram(left, CFS), Audiogram(right, CFS))
            for lid, (left, right) in LISTENERS.items()
        ],
        meta / f"listeners.{split}.json",
    )
    records = [{"Track Name": n, "Split": f} for n, f in songs.items()]
    (meta / f"musdb18.{split}.json").write_text(json.dumps(records))
    if split == "test":
        segments = {
            n: {
                "objective_evaluation": {"start": 0.5, "end": seconds - 0.25},
                "subjective_evaluation": {"start": 0.25, "end": seconds - 0.5},
            }
            for n in songs
        }
        (meta / "musdb18.segments.test.json").write_text(json.dumps(segments))
    return root


@pytest.fixture(scope="session")
def cad1_root(tmp_path_factory) -> Path:
    """Two songs of 2 s (valid split, audio in train/) and two listeners."""
    return make_cad1_root(tmp_path_factory.mktemp("cad1"), {"Song A - One": "train", "Song B - Two": "train"})


@pytest.fixture
def cad1_factory():
    """``make_cad1_root`` (a CAD1 layout with the given songs and split)."""
    return make_cad1_root


@pytest.fixture(scope="session")
def tiny_cadenza_root(tiny_chorales_root, tmp_path_factory) -> Path:
    """The tiny chorales in the Cadenza layout: 2 pieces per split, 1 scene each, 2 of 4 listeners per scene,
    1.5-s excerpts."""
    from musicbench.data.cadenza_chorales import build_cadenza_chorales

    root = tmp_path_factory.mktemp("cadenza")
    build_cadenza_chorales(
        root,
        tiny_chorales_root,
        pieces_per_split=2,
        scenes_per_piece=1,
        listeners_per_split=4,
        listeners_per_scene=2,
        segment_seconds=1.5,
        progress=False,
    )
    return root
