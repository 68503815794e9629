"""The track index of a MUSDB18-layout dataset: find tracks, validate their headers, read chunks.

Two on-disk formats are supported:

- ``"wav"`` (MUSDB18-HQ and our generated chorales): ``<root>/{train,test}/<track>/mixture.wav`` plus one
  ``<source>.wav`` per source. Chunks are read with soundfile's frame offset, so only the chunk is read.
- ``"stem"`` (compressed MUSDB18): ``<root>/{train,test}/<track>.stem.mp4`` with the audio streams in the
  musdb order (mixture, drums, bass, other, vocals). Chunks are decoded by ffmpeg through ``stempeg``
  with ``start``/``duration``.

Everything that can be checked from headers (missing files, unreadable files, sample rates, channel
counts, lengths) is checked when the index is built, so that a training run fails in seconds rather than
hours in. Files are never resampled: a rate other than the configured one is an error.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from musicbench.audio.io import AudioFileError, audio_info, read_audio
from musicbench.data.manifest import MANIFEST_NAME, ManifestError, load_manifest

log = logging.getLogger(__name__)

SPLIT_FOLDERS = ("train", "test")
STEM_SUFFIX = ".stem.mp4"
MIXTURE = "mixture"
# AAC encodes in frames of 1024 samples; the streams of a .stem.mp4 may end up to one or two frames apart
# after encoding, which is not a defect of the file. Longer differences are.
STEM_LENGTH_TOLERANCE = 2048

GET_DATA_HELP = (
    "Get MUSDB18-HQ (wav) from https://zenodo.org/records/3338373 or the compressed MUSDB18 (.stem.mp4, see "
    "https://sigsep.github.io/datasets/musdb.html and the `musdb` package docs), then point the config at "
    "it: set the MUSDB_ROOT environment variable or pass paths.musdb_root=/path/to/musdb18hq. For the "
    "embedded chorale dataset, generate it with `mb-data chorales --root /path/to/chorales` (or `make data`)."
)

LAYOUT_HELP = (
    "Expected either <root>/train/<track>/{mixture,<source>...}.wav and <root>/test/<track>/... "
    "(MUSDB18-HQ / chorales), or <root>/train/<track>.stem.mp4 and <root>/test/<track>.stem.mp4 "
    "(compressed MUSDB18)."
)


class DatasetError(ValueError):
    """The dataset on disk or its configuration is unusable; the message names the path/track/key at fault."""


@functools.cache
def _musdb_config() -> dict[str, Any]:
    """The musdb package's own ``configs/mus.yaml`` (stem ids and the official validation subset)."""
    import yaml

    text = importlib.resources.files("musdb").joinpath("configs", "mus.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def musdb_validation_tracks() -> list[str]:
    """The standard 14-track MUSDB18 validation subset of ``train``, as shipped by the ``musdb`` package."""
    return list(_musdb_config()["validation_tracks"])


def musdb_stem_ids() -> dict[str, int]:
    """Audio stream index of each MUSDB18 stem in a ``.stem.mp4`` (``{"mixture": 0, "drums": 1, ...}``)."""
    return {str(k): int(v) for k, v in _musdb_config()["stem_ids"].items()}


@dataclass(frozen=True)
class Track:
    """One track of the dataset, validated at indexing time.

    Attributes:
        name: the track name (the folder name, or the file name without ``.stem.mp4``).
        split: ``"train"``, ``"valid"`` or ``"test"``.
        path: the track folder (wav format) or the ``.stem.mp4`` file (stem format).
        sources: the target sources, in the order of the targets that ``load`` returns.
        sample_rate: in Hz, the same for all files of the track.
        num_frames: length in samples, the same for the mixture and all sources.
        num_channels: channel count, the same for the mixture and all sources.
    """

    name: str
    split: str
    path: Path
    sources: tuple[str, ...]
    sample_rate: int
    num_frames: int
    num_channels: int = 2

    @property
    def is_stem(self) -> bool:
        """Whether the track is a compressed ``.stem.mp4`` (otherwise a folder of wav files)."""
        return self.path.name.endswith(STEM_SUFFIX)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.sample_rate

    def load(self, frame_offset: int = 0, num_frames: int = -1) -> tuple[Tensor, Tensor]:
        """Read the mixture and the targets from ``frame_offset`` (samples) for ``num_frames`` samples.

        Reading past the end returns fewer frames (the caller pads); ``num_frames=-1`` reads to the end.

        Returns:
            ``(mixture, targets)``: mixture ``(C, T)`` float32 from the mixture file/stream, targets
            ``(S, C, T)`` float32 in ``self.sources`` order.
        """
        audio = self._read((MIXTURE, *self.sources), frame_offset, num_frames)
        return audio[0], audio[1:]

    def load_targets(
        self, frame_offset: int = 0, num_frames: int = -1, sources: tuple[str, ...] | list[str] | None = None
    ) -> Tensor:
        """Read only the source files/streams (no mixture): ``(S', C, T)`` float32 in ``sources`` order.

        ``sources`` defaults to all of ``self.sources``; reading a subset is what remixing across tracks uses.
        """
        sources = tuple(self.sources if sources is None else sources)
        unknown = [s for s in sources if s not in self.sources]
        if unknown:
            raise ValueError(f"track {self.name!r} has no sources {unknown}; it has {list(self.sources)}")
        return self._read(sources, frame_offset, num_frames)

    def load_stem(self, name: str, frame_offset: int = 0, num_frames: int = -1) -> Tensor:
        """Read one file/stream, ``"mixture"`` or a source, as ``(C, T)`` float32 (arguments as ``load``)."""
        if name != MIXTURE and name not in self.sources:
            raise ValueError(f"track {self.name!r} has no {name!r}; it has mixture and {list(self.sources)}")
        return self._read((name,), frame_offset, num_frames)[0]

    def _read(self, names: tuple[str, ...], frame_offset: int, num_frames: int) -> Tensor:
        """Read ``names`` (``"mixture"`` and/or sources) as ``(len(names), C, T)`` float32."""
        if not 0 <= frame_offset <= self.num_frames:
            raise ValueError(
                f"track {self.name!r}: frame_offset {frame_offset} outside [0, {self.num_frames}] samples"
            )
        available = self.num_frames - frame_offset
        length = available if num_frames < 0 else min(int(num_frames), available)
        if self.is_stem:
            return self._read_stem(names, frame_offset, length)
        parts = []
        for name in names:
            file = self.path / f"{name}.wav"
            try:
                audio, _ = read_audio(file, frame_offset=frame_offset, num_frames=length)
            except AudioFileError as exc:
                raise DatasetError(f"track {self.name!r} ({self.split}): {exc}") from exc
            parts.append(fit_length(audio, length))
        return torch.stack(parts)

    def _read_stem(self, names: tuple[str, ...], frame_offset: int, length: int) -> Tensor:
        import stempeg

        ids = musdb_stem_ids()
        if length == 0:
            return torch.zeros(len(names), self.num_channels, 0)
        try:
            # Always pass start and duration: without them ffmpeg also returns the AAC padding at the end.
            audio, _ = stempeg.read_stems(
                str(self.path),
                start=frame_offset / self.sample_rate,
                duration=length / self.sample_rate,
                stem_id=[ids[n] for n in names],
                always_3d=True,
                dtype=np.float32,
                sample_rate=self.sample_rate,
                info=_stem_info(str(self.path)),
            )
        except Exception as exc:  # ffmpeg/ffprobe failures surface as Warning, RuntimeError, ffmpeg.Error
            raise DatasetError(
                f"track {self.name!r} ({self.split}): cannot decode {self.path}: {exc}. "
                "Is it a complete MUSDB18 .stem.mp4, and are ffmpeg/ffprobe on PATH?"
            ) from exc
        # stempeg gives (streams, samples, channels); ffmpeg's -t rounds to whole samples, so fix the length.
        tensor = torch.from_numpy(np.ascontiguousarray(audio.transpose(0, 2, 1)))
        return fit_length(tensor, length)


def fit_length(audio: Tensor, length: int) -> Tensor:
    """Trim or zero-pad the last axis of ``audio`` to ``length`` samples."""
    if audio.shape[-1] > length:
        return audio[..., :length]
    if audio.shape[-1] < length:
        return torch.nn.functional.pad(audio, (0, length - audio.shape[-1]))
    return audio


@functools.lru_cache(maxsize=512)
def _stem_info(path: str) -> Any:
    """ffprobe's description of a ``.stem.mp4`` (cached: each worker probes each file once)."""
    import stempeg

    return stempeg.Info(path)


def read_manifest(root: Path) -> dict[str, Any] | None:
    """``<root>/manifest.json`` as a dict, or ``None`` when there is none (plain MUSDB18)."""
    if not (Path(root) / MANIFEST_NAME).is_file():
        return None
    try:
        return load_manifest(root, required=("sources",))
    except ManifestError as exc:
        raise DatasetError(str(exc)) from exc


def check_root(root: str | Path | None) -> Path:
    """Return ``root`` as a Path or raise DatasetError explaining how to get the data."""
    if root is None or str(root).strip() in ("", "None", "???"):
        raise DatasetError(f"no dataset root is configured (got {root!r}). {GET_DATA_HELP}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetError(f"dataset root {path} does not exist or is not a folder. {GET_DATA_HELP}")
    return path


def detect_format(root: Path) -> str:
    """``"wav"`` or ``"stem"``, from what ``<root>/train`` and ``<root>/test`` contain."""
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
            "(config key data.fmt) to choose one."
        )
    if not (has_stem or has_wav):
        raise DatasetError(f"dataset root {root} contains no train/test tracks. {LAYOUT_HELP}")
    return "stem" if has_stem else "wav"


def index_folder(
    root: Path, folder: str, sources: tuple[str, ...], sample_rate: int, fmt: str
) -> list[Track]:
    """Index and validate every track in ``<root>/<folder>`` (sorted by name, split = ``folder``).

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
                f"{valid} (config key data.sources)"
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
        info = _stem_info(str(path))
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
