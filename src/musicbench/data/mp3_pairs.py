"""MP3-degraded pairs for restoration: ``(degraded, clean)`` where degraded is clean after an MP3 round trip.

Three parts, one module each:

- clean audio: one stem (``data.stem``, default the mixture) of every track of a track index,
  ``data.source``: a :class:`~musicbench.data.musdb_index.MusdbIndex` (the chorales, MUSDB18/-HQ, with
  their train/valid/test split) or a :class:`~musicbench.data.index.FolderIndex` (every audio file under a
  folder, split by a hash of its relative path);
- the pair cache (:mod:`musicbench.data.mp3_cache`): pairs encoded once with
  :class:`~musicbench.audio.mp3.Mp3Codec`, keyed by content and every codec setting, written atomically;
- this datamodule: the datasets and loaders.

Items follow the separation convention with one source, ``"clean"``: ``(degraded (C, T), clean (1, C, T))``,
so the evaluation runner scores the MP3 input as its ``"mixture"`` baseline.

Hi-res restoration (``target_rate`` above ``sample_rate``, e.g. 88200, 96000 or 176400 Hz): the clean audio
is read at the target rate and the MP3 is made from it at the codec's rate ``sample_rate`` (44.1 kHz), then
resampled to the target rate, so both sides of an item are at ``target_rate`` (the degraded side carries
nothing above ``sample_rate / 2``): a model sees the MP3's band and predicts the target rate's bins.

- Training: random aligned chunks of random tracks; with ``bitrates`` set (on-the-fly mode) every chunk is
  encoded at a bit rate drawn from the list (augmentation across bit rates), else read from the cache.
- Validation: consecutive fixed segments (or full tracks); test: full tracks. Both from the cache.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from musicbench.audio.mp3 import Mp3Codec
from musicbench.data.index import TrackIndex
from musicbench.data.loading import ChunkSampling, EvalDataset, RandomChunks, SplitLoaders
from musicbench.data.mp3_cache import CLEAN, CleanItem, PairCache, PairTrack, degrade
from musicbench.data.splits import SPLITS, TEST, TRAIN, VALID, check_split
from musicbench.data.tracks import MIXTURE, DatasetError, fit_length
from musicbench.errors import ConfigError
from musicbench.utils.hashcache import FileHashes

log = logging.getLogger(__name__)


class PairChunkDataset(RandomChunks):
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
        sampling: ChunkSampling,
        codec: Mp3Codec | None = None,
        bitrates: Sequence[int] | None = None,
        margin: int = 0,
        codec_rate: int | None = None,
    ) -> None:
        super().__init__(tracks, sampling)
        self.codec, self.bitrates, self.margin = codec, list(bitrates or []), int(margin)
        self.codec_rate = codec_rate

    def _draw(self, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        t, offset = self._draw_position(rng)
        track = self.tracks[t]
        if not self.bitrates:
            degraded, clean = track.load(offset, self.chunk_frames)
            return fit_length(degraded, self.chunk_frames), fit_length(clean, self.chunk_frames)
        assert self.codec is not None
        codec = self.codec.with_bitrate(int(rng.choice(self.bitrates)))
        lo = max(0, offset - self.margin)
        hi = min(track.num_frames, offset + self.chunk_frames + self.margin)
        _, clean = track.load(lo, hi - lo)
        rate = track.sample_rate
        degraded = torch.from_numpy(degrade(clean[0].numpy(), codec, self.codec_rate or rate, rate))
        degraded = degraded[:, offset - lo :][:, : self.chunk_frames]
        clean = clean[..., offset - lo :][..., : self.chunk_frames]
        return fit_length(degraded, self.chunk_frames), fit_length(clean, self.chunk_frames)

    def _audible(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """The clean side: the MP3 of a silent chunk is silent too, and the clean audio is what is read."""
        return targets


class Mp3PairsDataModule(SplitLoaders):
    """Pairs ``(MP3-decoded, clean)`` from any track index, prepared once and cached.

    Args:
        source: the track index of the clean audio (:class:`~musicbench.data.musdb_index.MusdbIndex`,
            :class:`~musicbench.data.index.FolderIndex`); its split is the split of the pairs.
        codec: the MP3 settings of the cached pairs (validation/test, and training without ``bitrates``).
        stem: which stem of each track is the clean audio: ``"mixture"`` or one of ``source.sources``.
        sample_rate: the MP3's rate in Hz (an MPEG layer III rate): what the model's input carries.
        target_rate: rate of the clean audio and of the items in Hz (hi-res restoration: e.g. 88200, 96000,
            176400); ``None``: ``sample_rate``. Must not be below ``sample_rate``.
        sources: must be ``["clean"]``: the one target, named in metrics and results.
        cache_dir: where pairs are stored; ``None``: ``<source root>/.mp3_pairs``.
        prepare_workers: processes encoding pairs in parallel (0: in this process).
        bitrates: on-the-fly mode: CBR bit rates (kbit/s) drawn per training chunk; ``None``: cached pairs.
        on_the_fly_margin_seconds: real signal encoded around an on-the-fly chunk (seconds per side).
        short_tracks: training tracks shorter than a chunk are ``"pad"``-ded with zeros or ``"skip"``-ped.
        progress: show a progress bar while preparing.
        **loading: the loader settings of :class:`~musicbench.data.loading.SplitLoaders` (``chunk_seconds``,
            ``samples_per_epoch``, ``batch_size``, ``eval_batch_size``, ``num_workers``,
            ``valid_segment_seconds``, ``seed``, ``silent_chunk_retries``, ``silence_threshold_db``,
            ``pin_memory``).
    """

    def __init__(
        self,
        source: TrackIndex,
        codec: Mp3Codec,
        stem: str = MIXTURE,
        sample_rate: int = 44100,
        target_rate: int | None = None,
        sources: Sequence[str] = (CLEAN,),
        cache_dir: str | Path | None = None,
        prepare_workers: int = 2,
        bitrates: Sequence[int] | None = None,
        on_the_fly_margin_seconds: float = 0.25,
        short_tracks: str = "pad",
        progress: bool = True,
        **loading: Any,
    ) -> None:
        target = int(sample_rate if target_rate is None else target_rate)
        if target < int(sample_rate):
            raise ConfigError(
                f"data.target_rate={target_rate} is below data.sample_rate={sample_rate} (the MP3's rate): "
                "set data.target_rate to the rate of the restored audio (>= the MP3's) or null"
            )
        # The items' rate is the target rate: chunk lengths in seconds are converted with it.
        super().__init__(sample_rate=target, **loading)
        self.codec_rate = int(sample_rate)
        if list(sources) != [CLEAN]:
            raise ConfigError(
                f"data.sources must be ['{CLEAN}'] for MP3 pairs (one target), got {list(sources)}"
            )
        if stem != MIXTURE and stem not in source.sources:
            raise ConfigError(
                f"data.stem={stem!r} must be 'mixture' or one of the sources of data.source "
                f"({list(source.sources)})"
            )
        if short_tracks not in ("pad", "skip"):
            raise ConfigError(f"data.short_tracks must be 'pad' or 'skip', got {short_tracks!r}")
        codec.check(self.codec_rate)  # unsupported rate/bit rate: fail at construction, naming the values
        for b in bitrates or []:
            codec.with_bitrate(b).check(self.codec_rate)
        self.source, self.codec, self.stem = source, codec, stem
        self.sources = [CLEAN]
        self.cache_dir = cache_dir
        self.prepare_workers, self.progress = int(prepare_workers), bool(progress)
        self.bitrates = None if not bitrates else [int(b) for b in bitrates]
        self.margin = int(round(on_the_fly_margin_seconds * self.sample_rate))
        self.short_tracks = short_tracks
        self._tracks: dict[str, list[PairTrack]] = {}

    @property
    def root(self) -> Any:
        """The dataset root of the clean source (what run summaries name as the data)."""
        return self.source.root

    @property
    def target_rate(self) -> int:
        """Rate of the items (clean and degraded) in Hz; above :attr:`codec_rate` for hi-res pairs."""
        return self.sample_rate

    @property
    def codec_dir(self) -> Path:
        """``<cache_dir>/<codec name>``: the pairs of this codec (entries keyed by content + settings)."""
        base = Path(self.cache_dir) if self.cache_dir else Path(self.root) / ".mp3_pairs"
        return base.expanduser() / self.codec.name

    @functools.cached_property
    def cache(self) -> PairCache:
        """The pair cache in :attr:`codec_dir` (built on first use: the root may not exist before)."""
        return PairCache(
            self.codec_dir, self.codec, self.codec_rate, self.prepare_workers, self.progress, self.sample_rate
        )

    def prepare_data(self) -> None:
        """Prepare the pairs of every split in one pool (cache hits are not re-encoded)."""
        self._prepare(SPLITS)

    def tracks(self, split: str) -> list[PairTrack]:
        """The prepared pairs of ``split`` (prepared now if missing), in the source's order."""
        check_split(split)
        self._prepare((split,))
        return list(self._tracks[split])

    def check_files(self, hashes: FileHashes) -> None:
        """Check the clean source's files against its manifest's hashes, if it has a manifest."""
        self.source.check_files(hashes)

    def _prepare(self, splits: Sequence[str]) -> None:
        """Encode the missing pairs of ``splits`` and open all of them (once per split)."""
        items = {
            split: [CleanItem(track, self.stem) for track in self.source.tracks(split)]
            for split in splits
            if split not in self._tracks
        }
        if items:
            self._tracks.update(self.cache.pairs(items))

    def _train_tracks(self) -> list[PairTrack]:
        tracks = self.tracks(TRAIN)
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
        if not tracks:
            raise DatasetError(
                "no training pairs (after removing the validation tracks and short tracks; "
                f"data.short_tracks={self.short_tracks})"
            )
        return tracks

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets ``stage`` needs (``fit``, ``validate``, ``test``, ``predict`` or ``None``: all)."""
        if stage in (None, "fit"):
            self.train_set = PairChunkDataset(
                self._train_tracks(), self.sampling, self.codec, self.bitrates, self.margin, self.codec_rate
            )
        if stage in (None, "fit", "validate"):
            self.valid_set = EvalDataset(self.tracks(VALID), self.valid_segment_frames)
        if stage in (None, "test", "predict"):
            self.test_set = EvalDataset(self.tracks(TEST), None)
