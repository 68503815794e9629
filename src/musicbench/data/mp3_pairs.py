"""MP3-degraded pairs for restoration: ``(degraded, clean)`` where degraded is clean after an MP3 round trip.

Clean audio comes from a *source* (built with ``_target_``):

- :class:`TrackSource`: the mixture (or one stem) of every track of a MUSDB18-layout dataset (the chorales,
  MUSDB18/-HQ), indexed and split into train/valid/test by :class:`~musicbench.data.musdb.MusdbDataModule`
  (same validation tracks, same manifest checks);
- :class:`FolderSource`: every audio file (wav/flac/ogg/mp3) under a folder, recursively, split by a hash
  of its relative path (stable when files are added or removed).

Pairs are encoded once with :class:`~musicbench.audio.mp3.Mp3Codec` and cached as float wav files in
``<cache_dir>/<codec name>/<key>/{clean,degraded}.wav`` + ``meta.json`` (written last: an entry without it
is unfinished). ``key`` hashes the source file's content and every codec setting, so any change gives a new
entry and never a stale hit. Preparation runs in ``prepare_workers`` processes with a progress bar.

Items follow the separation convention with one source, ``"clean"``: ``(degraded (C, T), clean (1, C, T))``,
so the evaluation runner scores the MP3 input as its ``"mixture"`` baseline.

- Training: random aligned chunks of random tracks; with ``bitrates`` set (on-the-fly mode) every chunk is
  encoded at a bit rate drawn from the list (augmentation across bit rates), else read from the cache.
- Validation: consecutive fixed segments (or full tracks); test: full tracks. Both from the cache.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import soxr
import torch
from torch import Tensor
from torch.utils.data import Dataset

from musicbench.audio.io import AudioFileError, audio_info, read_audio, write_audio
from musicbench.audio.mp3 import CodecError, Mp3Codec, to_channels
from musicbench.data.augment import is_silent
from musicbench.data.musdb import SPLITS, EvalDataset, MusdbDataModule, SplitLoaders, item_rng
from musicbench.data.tracks import DatasetError, check_root, fit_length
from musicbench.utils.files import sha256_file, write_json_atomic
from musicbench.utils.progress import progress_bar

log = logging.getLogger(__name__)

CLEAN = "clean"
CACHE_VERSION = 1  # bump when the stored format or the round trip itself changes
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
META_NAME = "meta.json"


# ------------------------------------------------------------------------------------------------ sources
@dataclass(frozen=True)
class CleanItem:
    """One clean recording of a source.

    Attributes:
        name: unique name within the source (track name, or the file's relative path).
        split: ``"train"``, ``"valid"`` or ``"test"``.
        path: the file holding the audio (named in errors; its content is hashed for the cache key).
        stem: the stem of a MUSDB track (``"mixture"``, a source name), or ``""`` for a plain file.
        track: the indexed MUSDB track, if any.
    """

    name: str
    split: str
    path: Path
    stem: str = ""
    track: Any = None

    def load(self, sample_rate: int) -> Tensor:
        """The clean audio ``(C, T)`` float32 at ``sample_rate`` Hz (plain files are resampled if needed)."""
        try:
            if self.track is not None:
                return self.track.load_stem(self.stem)
            audio, rate = read_audio(self.path)
        except (AudioFileError, DatasetError) as exc:
            raise DatasetError(f"cannot read clean audio {self.name!r} ({self.path}): {exc}") from exc
        if rate != sample_rate:
            audio = torch.from_numpy(soxr.resample(audio.numpy().T, rate, sample_rate, quality="HQ").T.copy())
        return audio

    def content_hash(self) -> str:
        """sha256 of the file's bytes (plus the stem for multi-stream files)."""
        return sha256_file(self.path) + (f"/{self.stem}" if self.stem else "")


class TrackSource:
    """The mixtures (or one stem) of a MUSDB18-layout dataset, with its train/valid/test split.

    Args:
        root: dataset root (``<root>/{train,test}/<track>/...``, e.g. the chorales or MUSDB18-HQ).
        sources: the dataset's sources (checked against its manifest, as for separation).
        sample_rate: expected rate of the files in Hz.
        stem: which file of each track is the clean audio: ``"mixture"`` or one of ``sources``.
        fmt, valid_tracks: as for :class:`~musicbench.data.musdb.MusdbDataModule`.
    """

    def __init__(
        self,
        root: str | Path,
        sources: Sequence[str],
        sample_rate: int = 44100,
        stem: str = "mixture",
        fmt: str = "auto",
        valid_tracks: str | Sequence[str] | None = "auto",
    ) -> None:
        if stem != "mixture" and stem not in list(sources):
            raise ValueError(
                f"source.stem={stem!r} must be 'mixture' or one of source.sources={list(sources)}"
            )
        self.stem = stem
        self.index = MusdbDataModule(
            root, sources, sample_rate=sample_rate, fmt=fmt, valid_tracks=valid_tracks
        )
        self.root = root

    def items(self, split: str) -> list[CleanItem]:
        """The clean items of ``split``, sorted by track name."""
        out = []
        for t in self.index.tracks(split):
            path = t.path if t.is_stem else t.path / f"{self.stem}.wav"
            out.append(CleanItem(t.name, split, path, self.stem, t))
        return out


class FolderSource:
    """Every audio file under ``root`` (recursive), split deterministically by a hash of its relative path.

    A file goes to test if ``u < test_fraction``, to valid if ``u < test_fraction + valid_fraction``, else to
    train, where ``u`` in [0, 1) comes from the sha1 of the relative path: the split of a file never changes
    when other files are added or removed.

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
            raise ValueError(
                f"source.valid_fraction={valid_fraction} and source.test_fraction={test_fraction} must be "
                ">= 0 with a sum <= 1"
            )
        self.root = root
        self.extensions = tuple(e.lower() for e in extensions)
        self.valid_fraction, self.test_fraction = float(valid_fraction), float(test_fraction)
        self._splits: dict[str, list[CleanItem]] | None = None

    def split_of(self, relative: str) -> str:
        """The split of a file from its path relative to ``root`` (posix separators)."""
        u = int(hashlib.sha1(relative.encode()).hexdigest()[:12], 16) / 16**12
        if u < self.test_fraction:
            return "test"
        return "valid" if u < self.test_fraction + self.valid_fraction else "train"

    def items(self, split: str) -> list[CleanItem]:
        if self._splits is None:
            root = check_root(self.root)
            files = sorted(
                p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(self.extensions)
            )
            if not files:
                raise DatasetError(f"no audio files ({', '.join(self.extensions)}) under {root}")
            self._splits = {s: [] for s in SPLITS}
            for path in files:
                try:
                    audio_info(path)  # fail now, naming the file, rather than in a worker later
                except AudioFileError as exc:
                    raise DatasetError(f"{exc} (delete or fix it, or narrow source.extensions)") from exc
                rel = path.relative_to(root).as_posix()
                self._splits[self.split_of(rel)].append(CleanItem(rel, self.split_of(rel), path))
        return list(self._splits[split])


# ------------------------------------------------------------------------------------------------- cache
def _single_threaded_worker() -> None:
    """Initialise a forked preparation worker: one torch thread, as the DataLoader does in its workers.

    A forked child must not enter the OpenMP thread pool its parent started (it would wait forever on the
    parent's threads, which do not exist in the child); with one thread torch never enters it.
    """
    torch.set_num_threads(1)


def entry_key(content_hash: str, codec: Mp3Codec, sample_rate: int) -> str:
    """The cache key of a pair: hashes the clean content, every codec setting and the rate."""
    blob = repr((CACHE_VERSION, content_hash, sorted(codec.params().items()), int(sample_rate)))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def prepare_pair(item: CleanItem, codec: Mp3Codec, sample_rate: int, entry_dir: Path) -> dict[str, Any]:
    """Encode ``item`` and write ``entry_dir/{clean,degraded}.wav`` then ``meta.json`` (atomically each).

    Returns the meta dict. Runs in worker processes, so everything it needs is in its arguments.
    """
    clean = to_channels(item.load(sample_rate).numpy(), codec.channels)
    try:
        degraded = codec(clean, sample_rate).numpy()
    except CodecError as exc:
        raise DatasetError(f"cannot encode {item.name!r} ({item.path}) as MP3 {codec.name}: {exc}") from exc
    write_audio(entry_dir / "clean.wav", clean, sample_rate, subtype="FLOAT")
    write_audio(entry_dir / "degraded.wav", degraded, sample_rate, subtype="FLOAT")
    meta = {
        "name": item.name,
        "source_path": str(item.path),
        "stem": item.stem,
        "codec": codec.params(),
        "sample_rate": int(sample_rate),
        "num_frames": int(clean.shape[-1]),
        "num_channels": int(clean.shape[0]),
        "cache_version": CACHE_VERSION,
    }
    write_json_atomic(entry_dir / META_NAME, meta)  # last: its presence marks a complete entry
    return meta


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
        parts = []
        for name in ("degraded", "clean"):
            file = self.path / f"{name}.wav"
            try:
                audio, _ = read_audio(file, frame_offset=frame_offset, num_frames=length)
            except AudioFileError as exc:
                raise DatasetError(
                    f"pair {self.name!r}: {exc}; delete {self.path} to prepare it again"
                ) from exc
            parts.append(fit_length(audio, max(0, min(length, self.num_frames - frame_offset))))
        return parts[0], parts[1][None]


# ---------------------------------------------------------------------------------------------- datasets
class PairChunkDataset(Dataset):
    """Random aligned training chunks ``(degraded (C, L), clean (1, C, L))``; item ``i`` is a pure function of
    ``(seed, i)``.

    From the cache, or (``codec`` and ``bitrates`` given) encoded on the fly at a bit rate drawn per item:
    the chunk is encoded with ``margin`` samples of real signal on each side, cut afterwards, so that it does
    not start with the codec's start-up transient. Tracks shorter than the chunk are zero-padded. Chunks whose
    clean audio is silent are redrawn up to ``silent_chunk_retries`` times.
    """

    def __init__(
        self,
        tracks: Sequence[PairTrack],
        chunk_frames: int,
        samples_per_epoch: int,
        seed: int = 0,
        codec: Mp3Codec | None = None,
        bitrates: Sequence[int] | None = None,
        margin: int = 0,
        silent_chunk_retries: int = 10,
        silence_threshold_db: float = -60.0,
    ) -> None:
        if not tracks:
            raise DatasetError("no training pairs (after removing the validation tracks and short tracks)")
        self.tracks = list(tracks)
        self.chunk_frames, self.samples_per_epoch, self.seed = int(chunk_frames), int(samples_per_epoch), seed
        self.codec, self.bitrates, self.margin = codec, list(bitrates or []), int(margin)
        self.silent_chunk_retries, self.silence_threshold_db = silent_chunk_retries, silence_threshold_db

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _draw(self, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        track = self.tracks[int(rng.integers(len(self.tracks)))]
        span = track.num_frames - self.chunk_frames
        offset = int(rng.integers(span + 1)) if span > 0 else 0
        if not self.bitrates:
            degraded, clean = track.load(offset, self.chunk_frames)
            return fit_length(degraded, self.chunk_frames), fit_length(clean, self.chunk_frames)
        assert self.codec is not None
        codec = self.codec.with_bitrate(int(rng.choice(self.bitrates)))
        lo = max(0, offset - self.margin)
        hi = min(track.num_frames, offset + self.chunk_frames + self.margin)
        _, clean = track.load(lo, hi - lo)
        degraded = codec(clean[0], track.sample_rate)[:, offset - lo :][:, : self.chunk_frames]
        clean = clean[..., offset - lo :][..., : self.chunk_frames]
        return fit_length(degraded, self.chunk_frames), fit_length(clean, self.chunk_frames)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        rng = item_rng(self.seed, index)
        for _ in range(self.silent_chunk_retries + 1):
            degraded, clean = self._draw(rng)
            if not is_silent(clean, self.silence_threshold_db):
                break
        return degraded.contiguous(), clean.contiguous()


# ------------------------------------------------------------------------------------------- datamodule
class Mp3PairsDataModule(SplitLoaders, pl.LightningDataModule):
    """Pairs ``(MP3-decoded, clean)`` from any clean source, prepared once and cached.

    Args:
        source: a clean-audio source with ``items(split) -> list[CleanItem]`` (:class:`TrackSource`,
            :class:`FolderSource`).
        codec: the MP3 settings of the cached pairs (validation/test, and training without ``bitrates``).
        sample_rate: rate of the pairs in Hz (an MPEG layer III rate).
        sources: must be ``["clean"]``: the one target, named in metrics and results.
        cache_dir: where pairs are stored; ``None``: ``<source root>/.mp3_pairs``.
        prepare_workers: processes encoding pairs in parallel (0: in this process).
        bitrates: on-the-fly mode: CBR bit rates (kbit/s) drawn per training chunk; ``None``: cached pairs.
        on_the_fly_margin_seconds: real signal encoded around an on-the-fly chunk (seconds per side).
        short_tracks: training tracks shorter than a chunk are ``"pad"``-ded with zeros or ``"skip"``-ped.
        chunk_seconds, samples_per_epoch, batch_size, eval_batch_size, num_workers, valid_segment_seconds,
        seed, silent_chunk_retries, silence_threshold_db, pin_memory: as for
            :class:`~musicbench.data.musdb.MusdbDataModule`.
        progress: show a progress bar while preparing.
    """

    def __init__(
        self,
        source: Any,
        codec: Mp3Codec,
        sample_rate: int = 44100,
        sources: Sequence[str] = (CLEAN,),
        cache_dir: str | Path | None = None,
        prepare_workers: int = 2,
        bitrates: Sequence[int] | None = None,
        on_the_fly_margin_seconds: float = 0.25,
        short_tracks: str = "pad",
        chunk_seconds: float = 3.0,
        samples_per_epoch: int = 256,
        batch_size: int = 8,
        eval_batch_size: int = 1,
        num_workers: int = 0,
        valid_segment_seconds: float | None = 10.0,
        seed: int = 0,
        silent_chunk_retries: int = 10,
        silence_threshold_db: float = -60.0,
        pin_memory: bool = False,
        progress: bool = True,
    ) -> None:
        super().__init__()
        if list(sources) != [CLEAN]:
            raise ValueError(
                f"data.sources must be ['{CLEAN}'] for MP3 pairs (one target), got {list(sources)}"
            )
        if short_tracks not in ("pad", "skip"):
            raise ValueError(f"data.short_tracks must be 'pad' or 'skip', got {short_tracks!r}")
        if valid_segment_seconds is None and eval_batch_size != 1:
            raise ValueError(
                "full-track validation (data.valid_segment_seconds=null) needs data.eval_batch_size=1"
            )
        for key, value in (("chunk_seconds", chunk_seconds), ("batch_size", batch_size)):
            if value is None or value <= 0:
                raise ValueError(f"data.{key} must be positive, got {value!r}")
        codec.check(sample_rate)  # unsupported rate/bit rate: fail at construction, naming the values
        for b in bitrates or []:
            codec.with_bitrate(b).check(sample_rate)
        self.source, self.codec = source, codec
        self.sample_rate = int(sample_rate)
        self.sources = [CLEAN]
        self.cache_dir = cache_dir
        self.prepare_workers = int(prepare_workers)
        self.bitrates = None if not bitrates else [int(b) for b in bitrates]
        self.margin = int(round(on_the_fly_margin_seconds * sample_rate))
        self.short_tracks = short_tracks
        self.chunk_frames = int(round(chunk_seconds * sample_rate))
        self.samples_per_epoch, self.batch_size = int(samples_per_epoch), int(batch_size)
        self.eval_batch_size, self.num_workers = int(eval_batch_size), int(num_workers)
        self.valid_segment_seconds = valid_segment_seconds
        self.seed, self.pin_memory, self.progress = int(seed), bool(pin_memory), bool(progress)
        self.silent_chunk_retries, self.silence_threshold_db = int(silent_chunk_retries), silence_threshold_db
        self._tracks: dict[str, list[PairTrack]] = {}
        self.train_set: Dataset | None = None
        self.valid_set: Dataset | None = None
        self.test_set: Dataset | None = None

    # ------------------------------------------------------------------ cache
    @property
    def root(self) -> Any:
        """The dataset root of the clean source (what run summaries name as the data)."""
        return self.source.root

    @property
    def codec_dir(self) -> Path:
        """``<cache_dir>/<codec name>``: the pairs of this codec (entries keyed by content + settings)."""
        base = Path(self.cache_dir) if self.cache_dir else Path(self.root) / ".mp3_pairs"
        return base.expanduser() / self.codec.name

    def prepare_data(self) -> None:
        """Prepare the pairs of every split in one pool (cache hits are not re-encoded)."""
        self._prepare(SPLITS)

    def tracks(self, split: str) -> list[PairTrack]:
        """The prepared pairs of ``split`` (prepared now if missing), in the source's order."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self._prepare((split,))
        return list(self._tracks[split])

    def _prepare(self, splits: Sequence[str]) -> None:
        """Encode the missing pairs of ``splits`` and open all of them (once per split)."""
        splits = [s for s in splits if s not in self._tracks]
        entries = {}
        for split in splits:
            items = self.source.items(split)
            entries[split] = [
                (it, self.codec_dir / entry_key(it.content_hash(), self.codec, self.sample_rate))
                for it in items
            ]
        todo = [(it, d) for split in splits for it, d in entries[split] if not (d / META_NAME).is_file()]
        if todo:
            total = sum(len(e) for e in entries.values())
            log.info(
                "preparing %d of %d pairs (MP3 %s) in %s", len(todo), total, self.codec.name, self.codec_dir
            )
            self._encode_all(todo, "/".join(splits))
        for split in splits:
            self._tracks[split] = [self._open(it, d) for it, d in entries[split]]

    def _encode_all(self, todo: list[tuple[CleanItem, Path]], split: str) -> None:
        with progress_bar(self.progress, label=f"mp3 pairs {split}") as bar:
            task = bar.add_task("", total=len(todo))
            if self.prepare_workers == 0 or len(todo) == 1:
                for item, entry in todo:
                    bar.update(task, description=item.name)
                    prepare_pair(item, self.codec, self.sample_rate, entry)
                    bar.advance(task)
                return
            # Processes, not threads: the encoder holds the GIL. Forked where the platform allows it (as the
            # DataLoader's workers are): spawned workers would each import torch and Lightning again (seconds).
            workers = min(self.prepare_workers, len(todo), os.cpu_count() or 1)
            with concurrent.futures.ProcessPoolExecutor(workers, initializer=_single_threaded_worker) as pool:
                futures = {
                    pool.submit(prepare_pair, item, self.codec, self.sample_rate, entry): item
                    for item, entry in todo
                }
                for future in concurrent.futures.as_completed(futures):
                    future.result()  # re-raises the worker's error, which names the file
                    bar.update(task, advance=1, description=futures[future].name)

    def _open(self, item: CleanItem, entry: Path) -> PairTrack:
        import json

        meta = json.loads((entry / META_NAME).read_text())
        return PairTrack(
            item.name,
            item.split,
            entry,
            int(meta["sample_rate"]),
            int(meta["num_frames"]),
            int(meta["num_channels"]),
        )

    # ------------------------------------------------------------- datasets
    def _train_tracks(self) -> list[PairTrack]:
        tracks = self.tracks("train")
        short = [t for t in tracks if t.num_frames < self.chunk_frames]
        if short:
            what = "zero-padded to" if self.short_tracks == "pad" else "skipped: shorter than"
            log.warning(
                "%d training pairs are %s the chunk of %d samples (data.short_tracks=%s): %s",
                len(short),
                what,
                self.chunk_frames,
                self.short_tracks,
                [t.name for t in short],
            )
        if self.short_tracks == "skip":
            tracks = [t for t in tracks if t.num_frames >= self.chunk_frames]
        return tracks

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.train_set = PairChunkDataset(
                self._train_tracks(),
                self.chunk_frames,
                self.samples_per_epoch,
                seed=self.seed,
                codec=self.codec,
                bitrates=self.bitrates,
                margin=self.margin,
                silent_chunk_retries=self.silent_chunk_retries,
                silence_threshold_db=self.silence_threshold_db,
            )
        if stage in (None, "fit", "validate"):
            self.valid_set = EvalDataset(self.tracks("valid"), self.valid_segment_frames)
        if stage in (None, "test", "predict"):
            self.test_set = EvalDataset(self.tracks("test"), None)
