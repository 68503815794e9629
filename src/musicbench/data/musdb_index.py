"""The track index of a MUSDB18-layout dataset: MUSDB18-HQ (wav), MUSDB18 (.stem.mp4) and the chorales.

Layout: ``<root>/{train,test}/<track>/{mixture,<source>...}.wav`` or ``<root>/{train,test}/<track>.stem.mp4``,
and, for generated datasets, ``<root>/manifest.json`` (its sources, sample rate and validation tracks are
checked against the configuration). The validation tracks are a named subset of ``train/``.

Everything that can be checked from headers (missing files, unreadable files, sample rates, channel
counts, lengths) is checked when the index is built, so that a training run fails in seconds rather than
hours in. Files are never resampled: a rate other than the configured one is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from musicbench.audio.io import AudioFileError, audio_info
from musicbench.data.index import TrackIndex, check_root
from musicbench.data.manifest import MANIFEST_NAME, ManifestError, load_manifest
from musicbench.data.splits import SPLIT_FOLDERS, TEST, TRAIN, VALID
from musicbench.data.tracks import (
    MIXTURE,
    STEM_SUFFIX,
    DatasetError,
    Track,
    musdb_stem_ids,
    musdb_validation_tracks,
    stem_info,
)
from musicbench.errors import ConfigError, first_few
from musicbench.utils.hashcache import FileHashes

log = logging.getLogger(__name__)

# AAC encodes in frames of 1024 samples; the streams of a .stem.mp4 may end up to one or two frames apart
# after encoding, which is not a defect of the file. Longer differences are.
STEM_LENGTH_TOLERANCE = 2048

GET_DATA_HELP = (
    "Point the dataset root at the data (for data=musdb: paths.musdb_root=... or $MUSDB_ROOT; for "
    "data=chorales: paths.chorales_root=... or $CHORALES_ROOT). MUSDB18-HQ (wav): "
    "https://zenodo.org/records/3338373; the compressed MUSDB18 (.stem.mp4): "
    "https://sigsep.github.io/datasets/musdb.html. The embedded chorale dataset is generated with "
    "`mb-data chorales --root /path/to/chorales` (or `make data`)."
)

LAYOUT_HELP = (
    "Expected either <root>/train/<track>/{mixture,<source>...}.wav and <root>/test/<track>/... "
    "(MUSDB18-HQ / chorales), or <root>/train/<track>.stem.mp4 and <root>/test/<track>.stem.mp4 "
    "(compressed MUSDB18)."
)


def read_manifest(root: Path) -> dict[str, Any] | None:
    """``<root>/manifest.json`` as a dict, or ``None`` when there is none (plain MUSDB18)."""
    if not (Path(root) / MANIFEST_NAME).is_file():
        return None
    try:
        return load_manifest(root, required=("sources",))
    except ManifestError as exc:
        raise DatasetError(str(exc)) from exc


def detect_format(root: Path, key: str = "data") -> str:
    """``"wav"`` or ``"stem"``, from what ``<root>/train`` and ``<root>/test`` contain (``key``: the config node
    named in errors)."""
    has_stem = has_wav = False
    for folder in SPLIT_FOLDERS:
        split_dir = root / folder
        if not split_dir.is_dir():
            continue
        for entry in split_dir.iterdir():
            if entry.is_file() and entry.name.endswith(STEM_SUFFIX):
                has_stem = True
            elif entry.is_dir() and not entry.name.startswith("."):
                has_wav = True
    if has_stem and has_wav:
        raise DatasetError(
            f"dataset root {root} holds both .stem.mp4 files and track folders; set fmt='stem' or fmt='wav' "
            f"(config key {key}.fmt) to choose one."
        )
    if not (has_stem or has_wav):
        raise DatasetError(f"dataset root {root} contains no train/test tracks. {LAYOUT_HELP}")
    return "stem" if has_stem else "wav"


def index_folder(
    root: Path, folder: str, sources: tuple[str, ...], sample_rate: int, fmt: str, key: str = "data"
) -> list[Track]:
    """Index and validate every track in ``<root>/<folder>`` (sorted by name, split = ``folder``).

    ``sample_rate`` is the rate in Hz every file must have; ``key`` is the config node named in errors.

    Returns an empty list when the folder does not exist; the caller decides whether that is an error.
    """
    split_dir = root / folder
    if not split_dir.is_dir():
        return []
    if fmt == "stem":
        unknown = [s for s in sources if s not in musdb_stem_ids() or s == MIXTURE]
        if unknown:
            valid = [s for s in musdb_stem_ids() if s != MIXTURE]
            raise DatasetError(
                f"sources {unknown} do not exist in MUSDB18 .stem.mp4 files ({split_dir}); the streams are "
                f"{valid} (config key {key}.sources)"
            )
        paths = sorted(p for p in split_dir.iterdir() if p.is_file() and p.name.endswith(STEM_SUFFIX))
        tracks = [_index_stem(p, folder, sources, sample_rate) for p in paths]
        extra = [s for s in musdb_stem_ids() if s not in (MIXTURE, *sources)]
        if extra and paths:
            log.warning(
                "the .stem.mp4 files in %s also hold %s, which are not among the configured sources %s; "
                "training mixtures (the sum of the configured sources) will not contain them",
                split_dir,
                extra,
                list(sources),
            )
    else:
        paths = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        tracks = [_index_wav(p, folder, sources, sample_rate) for p in paths]
        extra = sorted({f.stem for p in paths for f in p.glob("*.wav")} - {MIXTURE, *sources})
        if extra:
            # Training mixtures are recomputed as the sum of the configured sources, so stems left out of
            # the configuration are missing from them (fine for evaluation, wrong for training).
            log.warning(
                "tracks in %s have stems %s that are not among the configured sources %s; training mixtures "
                "(the sum of the configured sources) will not contain them",
                split_dir,
                extra,
                list(sources),
            )
    return tracks


def _index_wav(path: Path, split: str, sources: tuple[str, ...], sample_rate: int) -> Track:
    name = path.name
    headers: dict[str, tuple[int, int, int]] = {}
    for stem in (MIXTURE, *sources):
        file = path / f"{stem}.wav"
        if not file.is_file():
            present = sorted(p.name for p in path.glob("*.wav"))
            raise DatasetError(
                f"track {name!r} ({split}) is missing {file.name} (expected {file}); it has {present}. "
                f"Every track needs mixture.wav and one file per configured source {list(sources)}."
            )
        try:
            info = audio_info(file)
        except AudioFileError as exc:
            raise DatasetError(f"track {name!r} ({split}): {exc}") from exc
        headers[file.name] = (int(info.samplerate), int(info.channels), int(info.frames))
    rate, channels, frames = _check_consistent(name, split, headers, sample_rate, tolerance=0)
    return Track(name, split, path, tuple(sources), rate, frames, channels)


def _index_stem(path: Path, split: str, sources: tuple[str, ...], sample_rate: int) -> Track:
    name = path.name[: -len(STEM_SUFFIX)]
    ids = musdb_stem_ids()
    try:
        info = stem_info(str(path))
    except Exception as exc:  # ffmpeg.Error carries ffprobe's stderr
        stderr = getattr(exc, "stderr", b"") or b""
        detail = stderr.decode(errors="replace").strip() if isinstance(stderr, bytes) else str(stderr)
        raise DatasetError(
            f"track {name!r} ({split}): cannot read {path} with ffprobe: {detail or exc}. "
            "Is it a complete .stem.mp4, and are ffmpeg/ffprobe on PATH?"
        ) from exc
    streams = info.audio_streams
    headers: dict[str, tuple[int, int, int]] = {}
    for stem in (MIXTURE, *sources):
        idx = ids[stem]
        if idx >= len(streams):
            raise DatasetError(
                f"track {name!r} ({split}): {path} has {len(streams)} audio streams, so it lacks stream {idx} "
                f"({stem!r}); a MUSDB18 .stem.mp4 has 5 (mixture, drums, bass, other, vocals)."
            )
        stream = streams[idx]
        rate = int(stream["sample_rate"])
        headers[f"stream {idx} ({stem})"] = (rate, int(stream["channels"]), _stream_frames(stream, rate))
    rate, channels, frames = _check_consistent(
        name, split, headers, sample_rate, tolerance=STEM_LENGTH_TOLERANCE
    )
    return Track(name, split, path, tuple(sources), rate, frames, channels)


def _stream_frames(stream: dict[str, Any], rate: int) -> int:
    """Length in samples of one ffprobe audio stream (``duration_ts`` is in time-base units)."""
    if "duration_ts" in stream and "time_base" in stream:
        num, den = (int(x) for x in str(stream["time_base"]).split("/"))
        return int(round(int(stream["duration_ts"]) * num * rate / den))
    return int(round(float(stream["duration"]) * rate))


def _check_consistent(
    name: str, split: str, headers: dict[str, tuple[int, int, int]], sample_rate: int, tolerance: int
) -> tuple[int, int, int]:
    """Check that all files/streams of a track agree on rate, channels and length (within ``tolerance``).

    Returns ``(sample_rate, channels, frames)``; frames is the shortest length when a tolerance applies.
    """
    rates = {k: v[0] for k, v in headers.items()}
    channels = {k: v[1] for k, v in headers.items()}
    frames = {k: v[2] for k, v in headers.items()}
    if len(set(rates.values())) > 1:
        raise DatasetError(f"track {name!r} ({split}): its files have different sample rates (Hz): {rates}")
    if len(set(channels.values())) > 1:
        raise DatasetError(f"track {name!r} ({split}): its files have different channel counts: {channels}")
    if max(frames.values()) - min(frames.values()) > tolerance:
        raise DatasetError(f"track {name!r} ({split}): its files have different lengths (samples): {frames}")
    rate = next(iter(rates.values()))
    if rate != sample_rate:
        raise DatasetError(
            f"track {name!r} ({split}) is at {rate} Hz but the datamodule is configured for {sample_rate} Hz "
            "(data.sample_rate). Files are not resampled on the fly: set data.sample_rate to the files' rate "
            "or resample the dataset once (e.g. with ffmpeg)."
        )
    if min(frames.values()) == 0:
        raise DatasetError(f"track {name!r} ({split}) is empty (0 samples): {frames}")
    return rate, next(iter(channels.values())), min(frames.values())


class MusdbIndex(TrackIndex):
    """The tracks of a MUSDB18-layout dataset, split into train, valid (named tracks of ``train/``) and test.

    Args:
        root: dataset root holding ``train/`` and ``test/`` (and ``manifest.json`` for generated datasets).
        sources: the sources every track must have, in the order tracks return them. Must equal (as a set)
            the manifest's ``sources`` if there is one.
        sample_rate: expected rate of every file in Hz; files at another rate are an error (no resampling).
        fmt: ``"auto"`` (detect from the files), ``"wav"`` or ``"stem"``.
        valid_tracks: ``"auto"`` (the manifest's ``validation_tracks``, else the musdb package's standard
            14-track subset), a list of track names from ``train/``, or ``None`` for no validation.
        config_key: the config node these arguments come from, named in error messages (``data`` inside
            the separation datamodule, ``data.source`` where it is configured on its own).
    """

    def __init__(
        self,
        root: str | Path,
        sources: Sequence[str],
        sample_rate: int = 44100,
        fmt: str = "auto",
        valid_tracks: str | Sequence[str] | None = "auto",
        *,
        config_key: str = "data.source",
    ) -> None:
        key = config_key
        sources = [str(s) for s in sources] if sources is not None else []
        if not sources or len(set(sources)) != len(sources) or MIXTURE in sources:
            raise ConfigError(
                f"{key}.sources must be a non-empty list of distinct source names other than 'mixture', "
                f"got {sources}"
            )
        if fmt not in ("auto", "wav", "stem"):
            raise ConfigError(f"{key}.fmt must be 'auto', 'wav' or 'stem', got {fmt!r}")
        if isinstance(valid_tracks, str) and valid_tracks != "auto":
            raise ConfigError(
                f"{key}.valid_tracks must be 'auto', a list of track names or null, got {valid_tracks!r}"
            )
        if sample_rate is None or sample_rate <= 0:
            raise ConfigError(f"{key}.sample_rate must be positive, got {sample_rate!r}")
        super().__init__(root, sources)
        self.key = key
        self.sample_rate = int(sample_rate)
        self.fmt = fmt
        self.valid_tracks = (
            valid_tracks if valid_tracks is None or valid_tracks == "auto" else list(valid_tracks)
        )
        self._root: Path | None = None
        self._format: str | None = None
        self._manifest: dict | None = None

    @property
    def format(self) -> str:
        """The on-disk format in use, ``"wav"`` or ``"stem"`` (detected when ``fmt="auto"``)."""
        self._open_root()
        assert self._format is not None
        return self._format

    @property
    def manifest(self) -> dict | None:
        """The dataset's ``manifest.json`` contents, or ``None`` (plain MUSDB18)."""
        self._open_root()
        return self._manifest

    def split_dir(self, split_folder: str) -> Path:
        """``<root>/<split_folder>`` (``"train"`` or ``"test"``), for messages about missing tracks."""
        return self._open_root() / split_folder

    def _open_root(self) -> Path:
        """Check the root, read and check the manifest, detect the format (once)."""
        if self._root is not None:
            return self._root
        root = check_root(self.root, GET_DATA_HELP)
        manifest = read_manifest(root)
        if manifest is not None:
            self._check_manifest(root, manifest)
        fmt = detect_format(root, self.key) if self.fmt == "auto" else self.fmt
        self._root, self._manifest, self._format = root, manifest, fmt
        return root

    def _check_manifest(self, root: Path, manifest: dict) -> None:
        path = root / MANIFEST_NAME
        declared = manifest.get("sources")
        if declared is not None and set(map(str, declared)) != set(self.sources):
            raise DatasetError(
                f"the sources in {path} ({list(declared)}) differ from the configured sources "
                f"{self.key}.sources={list(self.sources)}; configure the dataset's sources (any order)."
            )
        rate = manifest.get("sample_rate")
        if rate is not None and int(rate) != self.sample_rate:
            raise DatasetError(
                f"{path} declares sample_rate {rate} Hz but data.sample_rate={self.sample_rate}; set "
                f"data.sample_rate={rate}."
            )

    def check_files(self, hashes: FileHashes) -> None:
        """Check every file that ``manifest.json`` lists against its recorded sha256 (hashes are cached by
        ``(path, size, mtime)`` in ``hashes``, so a check of unchanged files costs a ``stat`` each).

        Raises:
            DatasetError: a listed file is missing or its content differs; the message names the files and
                what to do (``mb-data verify``, regenerate or restore the dataset).
        """
        root = self._open_root()
        if self._manifest is None:
            return
        problems = []
        for track in self._manifest.get("tracks", []):
            for fname, expected in sorted(track.get("files", {}).items()):
                path = root / track["split"] / track["name"] / fname
                if not path.is_file():
                    problems.append(f"missing {path}")
                elif (actual := hashes.sha256(path)) != expected:
                    problems.append(f"{path} (manifest {expected[:12]}…, file {actual[:12]}…)")
        hashes.save()
        if problems:
            shown = first_few(problems)
            raise DatasetError(
                f"{len(problems)} file(s) of {root} do not match the sha256 recorded in {root / MANIFEST_NAME}: "
                f"{shown}. The dataset changed since it was written: run `mb-data verify --root {root}` for "
                "the full list, then restore the files or regenerate the dataset (for the chorales: "
                f"`mb-data chorales --root {root} ...`)."
            )

    def _find(self) -> dict[str, list[Track]]:
        """Build the train/valid/test track lists (headers only)."""
        root = self._open_root()
        assert self._format is not None
        found = {
            f: index_folder(root, f, self.sources, self.sample_rate, self._format, self.key)
            for f in SPLIT_FOLDERS
        }
        if not found[TRAIN] and not found[TEST]:
            raise DatasetError(
                f"dataset root {root} contains no train/test tracks ({self._format}). {LAYOUT_HELP}"
            )
        all_tracks = found[TRAIN] + found[TEST]
        channels = {t.num_channels for t in all_tracks}
        if len(channels) > 1:
            counts = {t.name: t.num_channels for t in all_tracks}
            raise DatasetError(
                f"tracks in {root} have different channel counts, which cannot be batched: {counts}"
            )

        wanted = self._validation_names()
        names = {t.name for t in found[TRAIN]}
        missing = [n for n in wanted if n not in names]
        if missing:
            raise DatasetError(
                f"validation tracks {missing} are not in {root / TRAIN} ({self.key}.valid_tracks="
                f"{self.valid_tracks!r}). Use a root that contains them, list other tracks, or set "
                f"{self.key}.valid_tracks=null for no validation."
            )
        valid_set = set(wanted)
        return {
            TRAIN: [t for t in found[TRAIN] if t.name not in valid_set],
            VALID: [replace(t, split=VALID) for t in found[TRAIN] if t.name in valid_set],
            TEST: found[TEST],
        }

    def _validation_names(self) -> list[str]:
        if self.valid_tracks is None:
            return []
        if self.valid_tracks != "auto":
            return list(self.valid_tracks)
        if self._manifest is not None:
            if "validation_tracks" not in self._manifest:
                raise DatasetError(
                    f"{self._root / MANIFEST_NAME} has no 'validation_tracks'; set {self.key}.valid_tracks to "
                    "a list of track names or null."
                )
            return [str(n) for n in self._manifest["validation_tracks"]]
        return musdb_validation_tracks()
