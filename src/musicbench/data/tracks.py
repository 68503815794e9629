"""Tracks: what an index finds on disk, validated from headers, read in chunks.

- :class:`Track`: a track of a MUSDB18-layout dataset, in one of two on-disk formats:

  - ``"wav"`` (MUSDB18-HQ and our generated chorales): a folder ``<track>/`` with ``mixture.wav`` plus one
    ``<source>.wav`` per source. Chunks are read with soundfile's frame offset, so only the chunk is read.
  - ``"stem"`` (compressed MUSDB18): one ``<track>.stem.mp4`` with the audio streams in the musdb order
    (mixture, drums, bass, other, vocals). Chunks are decoded by ffmpeg through ``stempeg`` with
    ``start``/``duration``.

- :class:`AudioFile`: one audio file of any format libsndfile reads, a track whose only stem is its mixture.

Indexes (:mod:`musicbench.data.index`, :mod:`musicbench.data.musdb_index`) build them; datasets read them.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from musicbench.audio.finite import first_nonfinite, nonfinite_message
from musicbench.audio.io import AudioFileError, read_audio
from musicbench.errors import UserError
from musicbench.utils.hashcache import FileHashes
from musicbench.utils.provenance import digest_of

STEM_SUFFIX = ".stem.mp4"
MIXTURE = "mixture"


class DatasetError(UserError, ValueError):
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
    """One track of a MUSDB18-layout dataset, validated at indexing time.

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
    def stems(self) -> tuple[str, ...]:
        """The names that ``load_stem`` reads: ``"mixture"`` and the sources."""
        return (MIXTURE, *self.sources)

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
        self._check_stem(name)
        return self._read((name,), frame_offset, num_frames)[0]

    def stem_path(self, name: str) -> Path:
        """The file that holds ``name`` (``"mixture"`` or a source): ``<track>/<name>.wav``, or the
        ``.stem.mp4`` itself."""
        self._check_stem(name)
        return self.path if self.is_stem else self.path / f"{name}.wav"

    def fingerprint(self, hashes: FileHashes) -> str:
        """The identity of the track's audio: a digest of its stems' names and the sha256 of their files.

        The same content gives the same fingerprint wherever the dataset lives; any changed byte of a
        configured stem gives another.
        """
        return digest_of("track", [(stem, hashes.sha256(self.stem_path(stem))) for stem in self.stems])

    def _check_stem(self, name: str) -> None:
        if name not in self.stems:
            raise ValueError(f"track {self.name!r} has no {name!r}; it has mixture and {list(self.sources)}")

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
                info=stem_info(str(self.path)),
            )
        except Exception as exc:  # ffmpeg/ffprobe failures surface as Warning, RuntimeError, ffmpeg.Error
            raise DatasetError(
                f"track {self.name!r} ({self.split}): cannot decode {self.path}: {exc}. "
                "Is it a complete MUSDB18 .stem.mp4, and are ffmpeg/ffprobe on PATH?"
            ) from exc
        # stempeg gives (streams, samples, channels); ffmpeg's -t rounds to whole samples, so fix the length.
        tensor = torch.from_numpy(np.ascontiguousarray(audio.transpose(0, 2, 1)))
        bad = first_nonfinite(tensor)
        if bad is not None:
            raise DatasetError(
                f"track {self.name!r} ({self.split}): {self.path} stream {names[bad[0]]!r} decodes to "
                f"{nonfinite_message(tensor[bad[0]], bad[1:], offset=frame_offset)}; replace the file"
            )
        return fit_length(tensor, length)


def fit_length(audio: Tensor, length: int) -> Tensor:
    """Trim or zero-pad the last axis of ``audio`` to ``length`` samples."""
    if audio.shape[-1] > length:
        return audio[..., :length]
    if audio.shape[-1] < length:
        return torch.nn.functional.pad(audio, (0, length - audio.shape[-1]))
    return audio


@functools.lru_cache(maxsize=512)
def stem_info(path: str) -> Any:
    """ffprobe's description of a ``.stem.mp4`` (cached: each worker probes each file once)."""
    import stempeg

    return stempeg.Info(path)


@dataclass(frozen=True)
class AudioFile:
    """One audio file (wav/flac/ogg/mp3) as a track with no sources: the file is its mixture.

    Attributes:
        name: the file's path relative to the indexed folder (posix separators).
        split: ``"train"``, ``"valid"`` or ``"test"``.
        path: the file.
        sample_rate: the file's own rate in Hz (users resample when they need another).
        num_frames: length in samples, from the header.
        num_channels: channel count.
    """

    name: str
    split: str
    path: Path
    sample_rate: int
    num_frames: int
    num_channels: int
    sources: tuple[str, ...] = ()

    @property
    def stems(self) -> tuple[str, ...]:
        """The names that ``load_stem`` reads: ``("mixture",)``."""
        return (MIXTURE,)

    def stem_path(self, name: str = MIXTURE) -> Path:
        """The file itself (its only stem is ``"mixture"``)."""
        self._check_stem(name)
        return self.path

    def load_stem(self, name: str = MIXTURE, frame_offset: int = 0, num_frames: int = -1) -> Tensor:
        """Read the file from ``frame_offset`` for ``num_frames`` samples (-1: to the end) as ``(C, T)``
        float32 at its own rate.

        Raises:
            AudioFileError: the file is gone or unreadable (the message names it).
        """
        self._check_stem(name)
        audio, _ = read_audio(self.path, frame_offset=frame_offset, num_frames=num_frames)
        return audio

    def fingerprint(self, hashes: FileHashes) -> str:
        """The identity of the file's audio: a digest of the sha256 of its bytes (not of its path)."""
        return digest_of("file", hashes.sha256(self.path))

    def _check_stem(self, name: str) -> None:
        if name != MIXTURE:
            raise ValueError(
                f"{self.name!r} is a single audio file: its only stem is 'mixture', not {name!r}"
            )
