"""Track indexes: the tracks of a dataset by split, found and validated once, on first use.

Both task families read their audio through an index: the separation datamodule through a
:class:`~musicbench.data.musdb_index.MusdbIndex` (MUSDB18/-HQ and the chorales), the MP3 pairs through
whichever index ``data.source`` names (a ``MusdbIndex``, or a :class:`FolderIndex` of audio files). A new
dataset layout adds its own :class:`TrackIndex` subclass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from musicbench.audio.io import AudioFileError, audio_info
from musicbench.data.splits import SPLITS, TEST, TRAIN, VALID, check_split
from musicbench.data.tracks import AudioFile, DatasetError
from musicbench.errors import ConfigError
from musicbench.utils.hashcache import FileHashes

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")

FOLDER_HELP = "Point data.source.root (paths.audio_root, or $AUDIO_ROOT) at a folder of audio files."


class MissingRootError(DatasetError):
    """The dataset root is not configured or is not a folder.

    Attributes:
        root: the root as configured; ``problem``: what is wrong with it; ``how_to_get``: how to get the data.
        The entry points add the config key that sets the root (:func:`musicbench.data.identity.root_hint`).
    """

    def __init__(self, root: Any, problem: str, how_to_get: str, key_hint: str = "") -> None:
        self.root, self.problem, self.how_to_get = root, problem, how_to_get
        super().__init__(" ".join(p for p in (problem, key_hint, how_to_get) if p))


def check_root(root: str | Path | None, how_to_get: str) -> Path:
    """Return ``root`` as a Path, or raise MissingRootError saying what is wrong and ``how_to_get`` the data."""
    if root is None or str(root).strip() in ("", "None", "???"):
        raise MissingRootError(root, f"no dataset root is configured (got {root!r}).", how_to_get)
    path = Path(root).expanduser()
    if not path.is_dir():
        raise MissingRootError(root, f"dataset root {path} does not exist or is not a folder.", how_to_get)
    return path


class TrackIndex:
    """The tracks of a dataset by split (``"train"``, ``"valid"``, ``"test"``), found on first use.

    Subclasses implement ``_find``. Every track has ``name``, ``split``, ``sample_rate`` (Hz),
    ``num_frames`` (samples), ``num_channels``, ``sources``, ``stems`` (``"mixture"`` and the sources),
    ``stem_path(name)`` and ``load_stem(name, frame_offset, num_frames) -> (C, T)``.

    Attributes:
        root: the dataset folder as configured (what run summaries name as the data).
        sources: the source names of every track (empty when a track is a single recording).
    """

    def __init__(self, root: str | Path, sources: Sequence[str] = ()) -> None:
        self.root = root
        self.sources: tuple[str, ...] = tuple(sources)
        self._tracks: dict[str, list[Any]] | None = None

    def tracks(self, split: str) -> list[Any]:
        """The tracks of ``split``, in a stable order (sorted by name)."""
        check_split(split)
        if self._tracks is None:
            self._tracks = self._find()
        return list(self._tracks[split])

    def _find(self) -> dict[str, list[Any]]:
        """Find and validate every track: ``{split: [track, ...]}`` for each split of ``SPLITS``."""
        raise NotImplementedError

    def check_files(self, hashes: FileHashes) -> None:
        """Check the files against hashes the dataset records (a manifest); nothing to check by default."""


class FolderIndex(TrackIndex):
    """Every audio file under ``root`` (recursive), split deterministically by a hash of its relative path.

    A file goes to test if ``u < test_fraction``, to valid if ``u < test_fraction + valid_fraction``, else to
    train, where ``u`` in [0, 1) comes from the sha1 of the relative path: the split of a file never changes
    when other files are added or removed. Tracks are :class:`~musicbench.data.tracks.AudioFile` at the
    files' own rates.

    Args:
        root: folder to search.
        valid_fraction, test_fraction: expected fractions of files in valid and test.
        extensions: file name endings to include (case-insensitive).
    """

    def __init__(
        self,
        root: str | Path,
        valid_fraction: float = 0.1,
        test_fraction: float = 0.2,
        extensions: Sequence[str] = AUDIO_EXTENSIONS,
    ) -> None:
        if not (0 <= valid_fraction and 0 <= test_fraction and valid_fraction + test_fraction <= 1):
            raise ConfigError(
                f"data.source.valid_fraction={valid_fraction} and data.source.test_fraction={test_fraction} "
                "must be >= 0 with a sum <= 1"
            )
        super().__init__(root)
        self.extensions = tuple(e.lower() for e in extensions)
        self.valid_fraction, self.test_fraction = float(valid_fraction), float(test_fraction)

    def split_of(self, relative: str) -> str:
        """The split of a file from its path relative to ``root`` (posix separators)."""
        u = int(hashlib.sha1(relative.encode()).hexdigest()[:12], 16) / 16**12
        if u < self.test_fraction:
            return TEST
        return VALID if u < self.test_fraction + self.valid_fraction else TRAIN

    def _find(self) -> dict[str, list[AudioFile]]:
        root = check_root(self.root, FOLDER_HELP)
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(self.extensions))
        if not files:
            raise DatasetError(f"no audio files ({', '.join(self.extensions)}) under {root}")
        found: dict[str, list[AudioFile]] = {s: [] for s in SPLITS}
        for path in files:
            try:
                info = audio_info(path)  # fail now, naming the file, rather than in a worker later
            except AudioFileError as exc:
                raise DatasetError(f"{exc} (delete or fix it, or narrow data.source.extensions)") from exc
            rel = path.relative_to(root).as_posix()
            split = self.split_of(rel)
            found[split].append(
                AudioFile(rel, split, path, int(info.samplerate), int(info.frames), int(info.channels))
            )
        return found
