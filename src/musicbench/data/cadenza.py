"""The Cadenza CAD1 Task 1 dataset (headphones): MUSDB18-HQ songs, listeners and segments, in the layout
the challenge distributes::

    <root>/audio/musdb18hq/{train,test}/<Track Name>/{mixture,vocals,drums,bass,other}.wav   44.1 kHz, stereo
    <root>/metadata/listeners.<split>.json       {LID: {name, audiogram_cfs, audiogram_levels_l, _r}}
    <root>/metadata/musdb18.<split>.json         [{"Track Name": ..., "Split": "train"|"test"}, ...]
    <root>/metadata/musdb18.segments.test.json   {song: {"objective_evaluation": {start, end}, ...}} (s)

``<split>`` is ``train``, ``valid`` or ``test``; a record's ``Split`` says which audio folder holds the
song (``test`` -> ``test/``, anything else -> ``train/``, as pyclarity's recipe reads it). Audio is read
as pyclarity reads it (16-bit PCM / 32768 as float32), so a score computed here sees the same numbers.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from musicbench.audio.io import audio_info
from musicbench.data.tracks import DatasetError
from musicbench.hearing.audiogram import Listener, load_listeners

SAMPLE_RATE = 44100
# The file names of the stems, and the order pyclarity's CAD1 evaluation scores them in.
STEMS = ("vocals", "drums", "bass", "other")
EVAL_ORDER = ("drums", "bass", "other", "vocals")
EARS = ("left", "right")
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Song:
    """One song: its name, the audio folder holding it and, for the test protocol, its segments (s)."""

    name: str
    folder: Path
    segments: Mapping[str, tuple[float, float]]

    def path(self, stem: str) -> Path:
        """``<folder>/<stem>.wav`` (``stem``: ``mixture`` or one of ``STEMS``)."""
        return self.folder / f"{stem}.wav"


def read_cad1_audio(path: Path) -> np.ndarray:
    """``(samples, channels)`` float32, as pyclarity reads a CAD1 wav: 16-bit PCM / 32768.

    Float wav files are read as they are (soundfile's float32). Raises DatasetError naming the file for a
    missing, unreadable or non-44.1 kHz file.
    """
    info = audio_info(path)
    if info.samplerate != SAMPLE_RATE:
        raise DatasetError(f"{path}: {info.samplerate} Hz; CAD1 audio is {SAMPLE_RATE} Hz (MUSDB18-HQ)")
    if info.subtype == "PCM_16":
        data, _ = sf.read(str(path), dtype="int16", always_2d=True)
        return (data / 32768.0).astype(np.float32)
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return data


def _load_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}. Is the CAD1 root (paths.cad1_root) right?")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: not valid JSON ({err})") from err


class Cad1Task1:
    """CAD1 Task 1 songs and listeners of one split.

    Args:
        root: the task folder (``.../cadenza_data/task1``; the layout is in the module docstring).
        split: ``train``, ``valid`` or ``test``: which ``listeners.<split>.json`` and ``musdb18.<split>.json``.
        songs: only these songs (names), in the metadata's order; ``None``: all.
        listeners: only these listener ids, in the metadata's order; ``None``: all.

    Raises:
        DatasetError: a metadata file is missing or malformed, a song's folder or a stem is missing or not
            44.1 kHz stereo, a requested song or listener does not exist, or (test) a song has no segments;
            the message names the file and key.
    """

    sample_rate = SAMPLE_RATE
    stems = STEMS

    def __init__(
        self,
        root: str | Path,
        split: str = "valid",
        songs: list[str] | None = None,
        listeners: list[str] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise DatasetError(f"data.split={split!r}: CAD1 splits are {', '.join(SPLITS)}")
        self.root = Path(root).expanduser()
        self.split = split
        if not self.root.is_dir():
            raise DatasetError(
                f"CAD1 root not found: {self.root}. Set paths.cad1_root (or $CAD1_ROOT) to the folder holding "
                "audio/musdb18hq and metadata (docs/cadenza.md)"
            )
        meta = self.root / "metadata"
        self.listeners = self._listeners(meta / f"listeners.{split}.json", listeners)
        segments = self._segments(meta / "musdb18.segments.test.json") if split == "test" else {}
        self.songs = self._songs(meta / f"musdb18.{split}.json", songs, segments)

    def _listeners(self, path: Path, wanted: list[str] | None) -> dict[str, Listener]:
        if not path.is_file():
            raise DatasetError(f"listeners file not found: {path}. Is the CAD1 root (paths.cad1_root) right?")
        try:
            everyone = load_listeners(path)
        except (ValueError, TypeError) as err:
            raise DatasetError(str(err)) from err
        if not everyone:
            raise DatasetError(f"{path}: no listeners")
        return _subset(everyone, wanted, path, "listener")

    def _songs(
        self, path: Path, wanted: list[str] | None, segments: Mapping[str, Mapping[str, tuple[float, float]]]
    ) -> list[Song]:
        records = _load_json(path, "music metadata file")
        if not isinstance(records, list) or not records:
            raise DatasetError(f"{path}: expected a non-empty JSON list of song records")
        songs: dict[str, Song] = {}
        for i, record in enumerate(records):
            where = f"{path}: record {i}"
            if not isinstance(record, Mapping):
                raise DatasetError(f"{where}: expected an object, got {type(record).__name__}")
            for key in ("Track Name", "Split"):
                if not isinstance(record.get(key), str) or not record[key]:
                    raise DatasetError(
                        f"{where}: {key!r} must be a non-empty string, got {record.get(key)!r}"
                    )
            name = record["Track Name"]
            if self.split == "test" and name not in segments:
                raise DatasetError(
                    f"{self.root / 'metadata' / 'musdb18.segments.test.json'}: no segments for song {name!r}"
                )
            folder = (
                self.root / "audio" / "musdb18hq" / ("test" if record["Split"] == "test" else "train") / name
            )
            songs[name] = Song(name, folder, segments.get(name, {}))
        chosen = _subset(songs, wanted, path, "song")
        for song in chosen.values():
            self._check_song(song)
        return list(chosen.values())

    @staticmethod
    def _segments(path: Path) -> dict[str, dict[str, tuple[float, float]]]:
        raw = _load_json(path, "segments file")
        if not isinstance(raw, Mapping):
            raise DatasetError(f"{path}: expected a JSON object keyed by song name")
        out: dict[str, dict[str, tuple[float, float]]] = {}
        for song, entry in raw.items():
            out[song] = {}
            for kind in ("objective_evaluation", "subjective_evaluation"):
                seg = entry.get(kind) if isinstance(entry, Mapping) else None
                if seg is None:
                    continue
                try:
                    start, end = float(seg["start"]), float(seg["end"])
                except (KeyError, TypeError, ValueError):
                    raise DatasetError(
                        f"{path}: song {song!r}: {kind!r} must be {{'start': s, 'end': s}}, got {seg!r}"
                    ) from None
                if not 0 <= start < end:
                    raise DatasetError(f"{path}: song {song!r}: {kind} start {start} s, end {end} s")
                out[song][kind] = (start, end)
            if "objective_evaluation" not in out[song]:
                raise DatasetError(f"{path}: song {song!r} has no 'objective_evaluation' segment")
        return out

    @staticmethod
    def _check_song(song: Song) -> None:
        if not song.folder.is_dir():
            raise DatasetError(f"song folder not found: {song.folder} (song {song.name!r} of the metadata)")
        frames = None
        for stem in ("mixture", *STEMS):
            info = audio_info(song.path(stem))
            if info.samplerate != SAMPLE_RATE or info.channels != 2:
                raise DatasetError(
                    f"{song.path(stem)}: {info.channels} channel(s) at {info.samplerate} Hz; CAD1 audio is "
                    f"stereo at {SAMPLE_RATE} Hz"
                )
            if frames is not None and info.frames != frames:
                raise DatasetError(f"{song.path(stem)}: {info.frames} samples, the mixture has {frames}")
            frames = info.frames

    def pairs(self) -> list[tuple[Song, Listener]]:
        """Every (song, listener) pair, song-major, in the metadata's order (pyclarity's order)."""
        return list(itertools.product(self.songs, self.listeners.values()))

    def stem(self, song: Song, stem: str) -> np.ndarray:
        """``(samples, 2)`` float32 at 44.1 kHz: ``mixture`` or one of ``STEMS``."""
        return read_cad1_audio(song.path(stem))

    def files(self, song: Song) -> list[Path]:
        """The audio files of a song (for its fingerprint)."""
        return [song.path(s) for s in ("mixture", *STEMS)]


def _subset(items: Mapping[str, Any], wanted: list[str] | None, path: Path, what: str) -> dict[str, Any]:
    if wanted is None:
        return dict(items)
    unknown = [w for w in wanted if w not in items]
    if unknown:
        known = ", ".join(list(items)[:8]) + (" ..." if len(items) > 8 else "")
        raise DatasetError(f"{path}: no {what} {unknown} (known: {known})")
    keep = set(wanted)
    return {k: v for k, v in items.items() if k in keep}
