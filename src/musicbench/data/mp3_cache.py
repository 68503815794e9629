"""The MP3 pair cache: clean audio and its MP3 round trip, encoded once, keyed by content and settings.

A pair is stored as float wav files in ``<cache_dir>/<codec name>/<key>/{clean,degraded}.wav`` plus
``meta.json``, written last: an entry without it is unfinished, and every file is written atomically.
``key`` hashes the clean file's content, every codec setting and the rates, so any change gives a new entry
and never a stale hit. Missing entries are encoded in worker processes, with a progress bar.

Hi-res pairs (``target_rate`` above the codec's ``sample_rate``): the clean audio is kept at the target
rate and the degraded audio is made by the realistic chain (:func:`degrade`): resample to the codec's rate,
MP3 round trip, then resample the decode back to the target rate, so that both files of a pair have one
rate and one length (the degraded file holds nothing above the codec rate's Nyquist frequency).

``meta.json`` records each file's size, length (frames) and sha256. An entry is verified when it is used:
size and the header's length every time, the sha256 once per process (remembered by path, size and
modification time). An entry that fails (a truncated, altered or missing file, an older format) is
prepared again, with a warning that names it and what was wrong.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import torch
from torch import Tensor

from musicbench.audio.io import AudioFileError, audio_info, read_audio, write_audio
from musicbench.audio.mp3 import CodecError, Mp3Codec, to_channels
from musicbench.data.tracks import MIXTURE, DatasetError, fit_length
from musicbench.utils.files import sha256_file, write_json_atomic
from musicbench.utils.hashcache import FileHashes, file_hashes
from musicbench.utils.progress import progress_bar
from musicbench.utils.provenance import digest_of

log = logging.getLogger(__name__)

CLEAN = "clean"
CACHE_VERSION = 1  # bump when the round trip itself changes (it is part of every key)
META_NAME = "meta.json"
PAIR_FILES = ("clean.wav", "degraded.wav")
# Files whose sha256 matched in this process, by (path, size, mtime in ns): hashed once per process.
_VERIFIED: set[tuple[str, int, int]] = set()


@dataclass(frozen=True)
class CleanItem:
    """One clean recording to encode: the stem ``stem`` of a track of a track index.

    Attributes:
        track: a track from a :class:`~musicbench.data.index.TrackIndex` (``name``, ``split``,
            ``sample_rate``, ``stems``, ``stem_path``, ``load_stem``).
        stem: ``"mixture"`` or one of the track's sources.
    """

    track: Any
    stem: str = MIXTURE

    @property
    def name(self) -> str:
        """The track's name, unique within its index."""
        return self.track.name

    @property
    def split(self) -> str:
        return self.track.split

    @property
    def path(self) -> Path:
        """The file holding the audio (named in errors; its content is hashed for the cache key)."""
        return self.track.stem_path(self.stem)

    def load(self, sample_rate: int) -> Tensor:
        """The clean audio ``(C, T)`` float32 at ``sample_rate`` Hz (resampled if the file has another rate)."""
        try:
            audio = self.track.load_stem(self.stem)
        except (AudioFileError, DatasetError) as exc:
            raise DatasetError(f"cannot read clean audio {self.name!r} ({self.path}): {exc}") from exc
        rate = self.track.sample_rate
        if rate != sample_rate:
            audio = torch.from_numpy(soxr.resample(audio.numpy().T, rate, sample_rate, quality="HQ").T.copy())
        return audio

    def content_hash(self, hashes: FileHashes | None = None) -> str:
        """sha256 of the file's bytes, plus the stem for a track of several stems (a .stem.mp4 holds them all).

        ``hashes``: the hash cache to use (default: :func:`~musicbench.utils.hashcache.file_hashes`).
        """
        digest = (hashes or file_hashes()).sha256(self.path)
        return digest + (f"/{self.stem}" if len(self.track.stems) > 1 else "")


@dataclass(frozen=True)
class PairTrack:
    """A prepared pair on disk; behaves like a separation :class:`~musicbench.data.tracks.Track` with one
    source, ``"clean"``, and the MP3-decoded audio as its mixture.
    """

    name: str
    split: str
    path: Path
    sample_rate: int
    num_frames: int
    num_channels: int
    sources: tuple[str, ...] = (CLEAN,)

    def load(self, frame_offset: int = 0, num_frames: int = -1) -> tuple[Tensor, Tensor]:
        """``(degraded (C, T), clean (1, C, T))`` float32 from ``frame_offset`` for ``num_frames`` samples."""
        length = self.num_frames - frame_offset if num_frames < 0 else num_frames
        expected = max(0, min(length, self.num_frames - frame_offset))
        parts = []
        for name in ("degraded", "clean"):
            file = self.path / f"{name}.wav"
            try:
                audio, _ = read_audio(file, frame_offset=frame_offset, num_frames=length)
            except AudioFileError as exc:
                raise DatasetError(
                    f"pair {self.name!r}: {exc}; delete {self.path} to prepare it again"
                ) from exc
            if audio.shape[-1] < expected:  # the file changed after the entry was verified
                raise DatasetError(
                    f"pair {self.name!r}: {file} ends at sample {frame_offset + audio.shape[-1]}, its cache "
                    f"entry says {self.num_frames}; delete {self.path} to prepare it again"
                )
            parts.append(fit_length(audio, expected))
        return parts[0], parts[1][None]

    def fingerprint(self, hashes: FileHashes) -> str:
        """The identity of the pair: its cache key (the clean content's sha256, every codec setting and the
        rate) and its length; ``hashes`` is not needed (the key was computed from it)."""
        return digest_of("mp3 pair", self.path.name, self.num_frames)


def entry_key(content_hash: str, codec: Mp3Codec, sample_rate: int, target_rate: int | None = None) -> str:
    """The cache key of a pair: hashes the clean content, every codec setting and the rates (Hz).

    ``target_rate`` (the clean audio's rate) enters the key only when it differs from ``sample_rate``, so
    the keys of same-rate pairs are those of earlier versions.
    """
    rates: tuple[int, ...] = (int(sample_rate),)
    if target_rate is not None and int(target_rate) != int(sample_rate):
        rates += (int(target_rate),)
    blob = repr((CACHE_VERSION, content_hash, sorted(codec.params().items()), *rates))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def resample(audio: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """``(C, T)`` float32 at ``rate`` Hz -> ``(C, T')`` at ``new_rate`` Hz (soxr, high quality); a no-op
    when the rates agree."""
    if int(rate) == int(new_rate):
        return audio
    return np.ascontiguousarray(soxr.resample(audio.T, int(rate), int(new_rate), quality="HQ").T)


def degrade(
    clean: np.ndarray, codec: Mp3Codec, sample_rate: int, target_rate: int | None = None
) -> np.ndarray:
    """The MP3 version of ``clean`` ``(C, T)`` float32 at ``target_rate`` Hz (default ``sample_rate``).

    The realistic chain of a hi-res pair: resample to the codec's rate ``sample_rate``, encode and decode
    with ``codec``, resample the decode back to ``target_rate``. Returns ``(codec.channels, T)`` float32 at
    ``target_rate``, sample-aligned with ``clean``.
    """
    target = int(target_rate or sample_rate)
    low = resample(clean, target, sample_rate)
    decoded = codec(low, sample_rate).numpy()
    return fit_length(torch.from_numpy(resample(decoded, sample_rate, target)), clean.shape[-1]).numpy()


def prepare_pair(
    item: CleanItem, codec: Mp3Codec, sample_rate: int, entry_dir: Path, target_rate: int | None = None
) -> dict[str, Any]:
    """Encode ``item`` and write ``entry_dir/{clean,degraded}.wav`` then ``meta.json`` (atomically each).

    ``sample_rate`` is the codec's rate, ``target_rate`` (default: the same) the rate of both files (see
    :func:`degrade`). Returns the meta dict. Runs in worker processes, so everything it needs is in its
    arguments.
    """
    rate = int(target_rate or sample_rate)
    clean = to_channels(item.load(rate).numpy(), codec.channels)
    try:
        degraded = degrade(clean, codec, sample_rate, rate)
    except CodecError as exc:
        raise DatasetError(f"cannot encode {item.name!r} ({item.path}) as MP3 {codec.name}: {exc}") from exc
    write_audio(entry_dir / "clean.wav", clean, rate, subtype="FLOAT")
    write_audio(entry_dir / "degraded.wav", degraded, rate, subtype="FLOAT")
    files = {
        name: {
            "bytes": (entry_dir / name).stat().st_size,
            "frames": int(clean.shape[-1]),
            "sha256": sha256_file(entry_dir / name),
        }
        for name in PAIR_FILES
    }
    meta = {
        "name": item.name,
        "source_path": str(item.path),
        "stem": item.stem,
        "codec": codec.params(),
        "sample_rate": rate,
        "codec_rate": int(sample_rate),
        "num_frames": int(clean.shape[-1]),
        "num_channels": int(clean.shape[0]),
        "cache_version": CACHE_VERSION,
        "files": files,
    }
    write_json_atomic(entry_dir / META_NAME, meta)  # last: its presence marks a complete entry
    return meta


def entry_problem(entry_dir: Path) -> str | None:
    """What is wrong with the finished entry ``entry_dir`` (``None``: nothing).

    Checks the format version, then each file's size and header length against ``meta.json``, then its
    sha256 (once per process and file version: a file that matched is remembered by path, size and
    modification time).
    """
    try:
        meta = json.loads((entry_dir / META_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return f"unreadable {META_NAME}: {exc}"
    if meta.get("cache_version") != CACHE_VERSION:
        return f"written by cache version {meta.get('cache_version')}, this is version {CACHE_VERSION}"
    if not isinstance(meta.get("files"), dict):
        return "written without file checksums (by an older musicbench)"
    for name in PAIR_FILES:
        path, want = entry_dir / name, meta["files"].get(name) or {}
        try:
            stat = path.stat()
        except OSError:
            return f"{name} is missing"
        if stat.st_size != want.get("bytes"):
            return f"{name} has {stat.st_size} bytes, {want.get('bytes')} were written"
        try:
            frames = audio_info(path).frames
        except AudioFileError as exc:
            return str(exc)
        if frames != want.get("frames") or frames != meta.get("num_frames"):
            return f"{name} has {frames} samples, {want.get('frames')} were written"
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in _VERIFIED:
            if sha256_file(path) != want.get("sha256"):
                return f"{name} does not match its recorded sha256 (altered after it was written)"
            _VERIFIED.add(key)
    return None


def open_pair(item: CleanItem, entry_dir: Path) -> PairTrack:
    """The finished entry ``entry_dir`` of ``item`` as a :class:`PairTrack`."""
    meta = json.loads((entry_dir / META_NAME).read_text())
    return PairTrack(
        item.name,
        item.split,
        entry_dir,
        int(meta["sample_rate"]),
        int(meta["num_frames"]),
        int(meta["num_channels"]),
    )


def _single_threaded_worker() -> None:
    """Initialise a forked preparation worker: one torch thread, as the DataLoader does in its workers.

    A forked child must not enter the OpenMP thread pool its parent started (it would wait forever on the
    parent's threads, which do not exist in the child); with one thread torch never enters it.
    """
    torch.set_num_threads(1)


class PairCache:
    """The pairs of one codec setting, in ``directory`` (``<cache_dir>/<codec name>``).

    Args:
        directory: the folder of this codec's entries.
        codec: the MP3 settings.
        sample_rate: the codec's rate in Hz (clean audio at another rate is resampled first).
        workers: processes encoding pairs in parallel (0: in this process).
        progress: show a progress bar while encoding.
        target_rate: rate of the pairs' files in Hz (hi-res pairs, see :func:`degrade`); ``None``:
            ``sample_rate``.
    """

    def __init__(
        self,
        directory: Path,
        codec: Mp3Codec,
        sample_rate: int,
        workers: int = 2,
        progress: bool = True,
        target_rate: int | None = None,
    ) -> None:
        self.directory, self.codec, self.sample_rate = Path(directory), codec, int(sample_rate)
        self.target_rate = int(target_rate or sample_rate)
        self.workers, self.progress = int(workers), bool(progress)

    def entry(self, item: CleanItem, hashes: FileHashes | None = None) -> Path:
        """The entry folder of ``item`` (whether or not it exists yet); ``hashes``: see ``content_hash``."""
        key = entry_key(item.content_hash(hashes), self.codec, self.sample_rate, self.target_rate)
        return self.directory / key

    def pairs(self, items: Mapping[str, Sequence[CleanItem]]) -> dict[str, list[PairTrack]]:
        """The pairs of each group of ``items`` (split -> items), in order; the missing ones are encoded
        first, all groups in one pool (cache hits are not encoded again)."""
        hashes = file_hashes()
        entries = {
            group: [(it, self.entry(it, hashes)) for it in group_items]
            for group, group_items in items.items()
        }
        hashes.save()
        todo = [(it, d) for pairs in entries.values() for it, d in pairs if not self._usable(it, d)]
        if todo:
            total = sum(len(e) for e in entries.values())
            log.info(
                "preparing %d of %d pairs (MP3 %s) in %s", len(todo), total, self.codec.name, self.directory
            )
            self._encode_all(todo, "/".join(entries))
        return {group: [open_pair(it, d) for it, d in pairs] for group, pairs in entries.items()}

    def _usable(self, item: CleanItem, entry: Path) -> bool:
        """Whether ``entry`` is finished and verified; a finished entry that fails verification is marked
        unfinished (its ``meta.json`` removed, so a crash while rebuilding cannot leave it trusted) with a
        warning that names it."""
        if not (entry / META_NAME).is_file():
            return False
        problem = entry_problem(entry)
        if problem is None:
            return True
        log.warning(
            "MP3 pair cache entry %s (%s, %s) is invalid: %s; preparing it again",
            entry,
            item.name,
            item.path,
            problem,
        )
        (entry / META_NAME).unlink(missing_ok=True)
        return False

    def _encode_all(self, todo: list[tuple[CleanItem, Path]], label: str) -> None:
        with progress_bar(self.progress, label=f"mp3 pairs {label}") as bar:
            task = bar.add_task("", total=len(todo))
            if self.workers == 0 or len(todo) == 1:
                for item, entry in todo:
                    bar.update(task, description=item.name)
                    prepare_pair(item, self.codec, self.sample_rate, entry, self.target_rate)
                    bar.advance(task)
                return
            # Processes, not threads: the encoder holds the GIL. Forked where the platform allows it (as the
            # DataLoader's workers are): spawned workers would each import torch and Lightning again (seconds).
            workers = min(self.workers, len(todo), os.cpu_count() or 1)
            with concurrent.futures.ProcessPoolExecutor(workers, initializer=_single_threaded_worker) as pool:
                futures = {
                    pool.submit(
                        prepare_pair, item, self.codec, self.sample_rate, entry, self.target_rate
                    ): item
                    for item, entry in todo
                }
                for future in concurrent.futures.as_completed(futures):
                    future.result()  # re-raises the worker's error, which names the file
                    bar.update(task, advance=1, description=futures[future].name)
