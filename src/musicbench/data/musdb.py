"""LightningDataModule for MUSDB18 / MUSDB18-HQ and datasets in the same layout (our chorales).

Items are ``(mixture, targets)`` with mixture ``(C, T)`` and targets ``(S, C, T)`` float32, the sources in
the configured order; batches add a leading batch dimension.

- Training: random chunks with source-level augmentation (gain, channel swap, remixing across tracks);
  the mixture is the sum of the augmented targets. Items are a pure function of ``(seed, index)``; the
  sampler hands out indices ``epoch * samples_per_epoch + i`` so every epoch draws new chunks, identically
  in every run and for any number of workers.
- Validation: consecutive fixed segments of ``valid_segment_seconds`` (or full tracks); mixture file.
- Test: full tracks, batch size 1; mixture file. ``tracks("test")`` is what the evaluation runner reads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from musicbench.data.augment import is_silent, random_channel_swap, random_gain
from musicbench.data.tracks import (
    LAYOUT_HELP,
    MANIFEST_NAME,
    DatasetError,
    Track,
    check_root,
    detect_format,
    fit_length,
    index_folder,
    musdb_validation_tracks,
    read_manifest,
)

log = logging.getLogger(__name__)

__all__ = ["DatasetError", "EpochSampler", "EvalDataset", "MusdbDataModule", "TrainChunkDataset", "Track"]

SPLITS = ("train", "valid", "test")


def item_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of training item ``index``: independent streams for every ``(seed, index)`` pair."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


class EpochSampler(Sampler[int]):
    """Yields ``epoch * num_samples + i`` for ``i < num_samples``: fresh, reproducible items each epoch.

    Lightning calls ``set_epoch`` before every epoch (also after resuming from a checkpoint). Iterating
    without calling ``set_epoch`` moves on to the next epoch by itself, so plain loops and wrappers such as
    Lightning's distributed sampler wrapper (which iterates this sampler once per epoch) also see new items.
    """

    def __init__(self, num_samples: int) -> None:
        self.num_samples = int(num_samples)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        start = self.epoch * self.num_samples
        self.epoch += 1
        return iter(range(start, start + self.num_samples))


class TrainChunkDataset(Dataset):
    """Random augmented chunks of random training tracks.

    Item ``index`` (any non-negative int; ``__len__`` is ``samples_per_epoch``) is drawn with
    ``item_rng(seed, index)``:

    1. a track uniformly at random (each track equally likely, as in Open-Unmix) and an offset uniformly
       in ``[0, num_frames - chunk_frames]``; tracks shorter than the chunk are read whole and zero-padded
       at the end;
    2. with probability ``remix_prob``, independently per source, that source instead comes from its own
       random track and offset (possibly the same track), which mixes sources across tracks;
    3. per source: gain uniform in ``gain_range_db``, then left/right swap with probability 0.5;
    4. mixture = sum of the augmented sources; if its mean power is at or below ``silence_threshold_db``
       dBFS, steps 1-4 are redrawn, up to ``silent_chunk_retries`` times (then the last draw is kept).

    Returns:
        ``(mixture (C, chunk_frames), targets (S, C, chunk_frames))`` float32.
    """

    def __init__(
        self,
        tracks: Sequence[Track],
        sources: Sequence[str],
        chunk_frames: int,
        samples_per_epoch: int,
        seed: int = 0,
        gain_range_db: tuple[float, float] | None = (-6.0, 3.0),
        channel_swap: bool = True,
        remix_prob: float = 0.0,
        silent_chunk_retries: int = 10,
        silence_threshold_db: float = -60.0,
    ) -> None:
        if not tracks:
            raise DatasetError("TrainChunkDataset needs at least one training track")
        self.tracks = list(tracks)
        self.sources = tuple(sources)
        self.chunk_frames = int(chunk_frames)
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.gain_range_db = (
            None if gain_range_db is None else (float(gain_range_db[0]), float(gain_range_db[1]))
        )
        self.channel_swap = bool(channel_swap)
        self.remix_prob = float(remix_prob)
        self.silent_chunk_retries = int(silent_chunk_retries)
        self.silence_threshold_db = float(silence_threshold_db)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _draw_position(self, rng: np.random.Generator) -> tuple[int, int]:
        """A random ``(track index, frame offset)``."""
        t = int(rng.integers(len(self.tracks)))
        span = self.tracks[t].num_frames - self.chunk_frames
        return t, int(rng.integers(span + 1)) if span > 0 else 0

    def _draw(self, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        base = self._draw_position(rng)
        positions = [base] * len(self.sources)
        if self.remix_prob > 0:
            for s in range(len(self.sources)):
                if rng.random() < self.remix_prob:
                    positions[s] = self._draw_position(rng)
        # Read the sources that share a (track, offset) together: one read per file, none for the mixture.
        groups: dict[tuple[int, int], list[int]] = {}
        for s, pos in enumerate(positions):
            groups.setdefault(pos, []).append(s)
        parts: list[Tensor | None] = [None] * len(self.sources)
        for (t, offset), idx in groups.items():
            audio = self.tracks[t].load_targets(offset, self.chunk_frames, [self.sources[i] for i in idx])
            audio = fit_length(audio, self.chunk_frames)
            for k, i in enumerate(idx):
                parts[i] = audio[k]
        targets = torch.stack(parts)  # type: ignore[arg-type]
        if self.gain_range_db is not None:
            targets = random_gain(targets, rng, *self.gain_range_db)
        if self.channel_swap:
            targets = random_channel_swap(targets, rng)
        return targets.sum(0), targets

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        rng = item_rng(self.seed, index)
        for _ in range(self.silent_chunk_retries + 1):
            mixture, targets = self._draw(rng)
            if not is_silent(mixture, self.silence_threshold_db):
                break
        return mixture.contiguous(), targets.contiguous()


class EvalDataset(Dataset):
    """Deterministic items for validation/testing: full tracks or consecutive fixed-length segments.

    With ``segment_frames=None`` each item is a full track. Otherwise each track yields the segments
    starting at ``0, L, 2L, ...`` that fit entirely in the track (the remainder shorter than ``L`` at the end
    is left out); a track shorter than ``L`` yields one segment, zero-padded to ``L``.

    Attributes:
        items: ``(track, frame_offset, num_frames)`` per item (``num_frames=-1``: to the end).

    Returns:
        ``(mixture (C, T), targets (S, C, T))`` float32; the mixture is the dataset's mixture file/stream.
    """

    def __init__(self, tracks: Sequence[Track], segment_frames: int | None = None) -> None:
        self.tracks = list(tracks)
        self.segment_frames = None if segment_frames is None else int(segment_frames)
        self.items: list[tuple[Track, int, int]] = []
        for track in self.tracks:
            if self.segment_frames is None:
                self.items.append((track, 0, -1))
                continue
            count = max(1, track.num_frames // self.segment_frames)
            self.items.extend((track, k * self.segment_frames, self.segment_frames) for k in range(count))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        track, offset, frames = self.items[index]
        mixture, targets = track.load(offset, frames)
        if frames > 0:
            mixture, targets = fit_length(mixture, frames), fit_length(targets, frames)
        return mixture.contiguous(), targets.contiguous()


class SplitLoaders:
    """The dataloaders of a datamodule with ``train_set`` (drawn through an :class:`EpochSampler` of
    ``samples_per_epoch`` items), ``valid_set`` and ``test_set`` built by ``setup``; uses ``batch_size``,
    ``eval_batch_size``, ``num_workers``, ``pin_memory``, ``valid_segment_seconds`` and ``sample_rate``."""

    @property
    def valid_segment_frames(self) -> int | None:
        """Validation segment length in samples (``valid_segment_seconds``; ``None``: whole tracks)."""
        if self.valid_segment_seconds is None:
            return None
        return int(round(self.valid_segment_seconds * self.sample_rate))

    def _loader(self, dataset: Dataset, batch_size: int, sampler: Sampler | None = None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        assert self.train_set is not None
        return self._loader(self.train_set, self.batch_size, EpochSampler(self.samples_per_epoch))

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches; an empty list (Lightning then skips validation) when there are no tracks."""
        if self.valid_set is None:
            self.setup("validate")
        assert self.valid_set is not None
        if len(self.valid_set) == 0:
            return []
        return self._loader(self.valid_set, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        """Full test tracks, one per batch, in ``tracks("test")`` order."""
        if self.test_set is None:
            self.setup("test")
        assert self.test_set is not None
        return self._loader(self.test_set, 1)


class MusdbDataModule(SplitLoaders, pl.LightningDataModule):
    """MUSDB18-HQ (wav), MUSDB18 (.stem.mp4) and the chorales (wav + manifest.json) as a LightningDataModule.

    Args:
        root: dataset root holding ``train/`` and ``test/`` (and ``manifest.json`` for generated datasets).
        sources: target sources in output order. Training mixtures are the sum of these, so list every
            source that makes up the mixture. Must equal (as a set) the manifest's ``sources`` if there is one.
        sample_rate: expected rate of every file in Hz; files at another rate are an error (no resampling).
        fmt: ``"auto"`` (detect from the files), ``"wav"`` or ``"stem"``.
        valid_tracks: ``"auto"`` (the manifest's ``validation_tracks``, else the musdb package's standard
            14-track subset), a list of track names from ``train/``, or ``None`` for no validation.
        chunk_seconds: training chunk length in seconds (``round(chunk_seconds * sample_rate)`` samples).
        samples_per_epoch: training items per epoch.
        batch_size: training batch size.
        eval_batch_size: validation batch size (must be 1 when validating on full tracks).
        num_workers: DataLoader worker processes (persistent when > 0).
        valid_segment_seconds: validation segment length in seconds; ``None`` validates on full tracks.
        gain_range_db: per-source random gain range in dB, or ``None`` for no gain augmentation.
        channel_swap: swap left/right per source with probability 0.5.
        remix_prob: per-source probability of taking the source from another random chunk/track.
        silent_chunk_retries: redraws of a training chunk whose mixture is silent.
        seed: seed of the training chunks (items are a function of ``(seed, index)``).
        pin_memory: passed to the DataLoaders.
        silence_threshold_db: mean power in dBFS at or below which a training chunk counts as silent.
    """

    def __init__(
        self,
        root: str | Path,
        sources: Sequence[str],
        sample_rate: int = 44100,
        fmt: str = "auto",
        valid_tracks: str | Sequence[str] | None = "auto",
        chunk_seconds: float = 6.0,
        samples_per_epoch: int = 1000,
        batch_size: int = 8,
        eval_batch_size: int = 1,
        num_workers: int = 0,
        valid_segment_seconds: float | None = 10.0,
        gain_range_db: tuple[float, float] | None = (-6.0, 3.0),
        channel_swap: bool = True,
        remix_prob: float = 0.0,
        silent_chunk_retries: int = 10,
        seed: int = 0,
        pin_memory: bool = False,
        silence_threshold_db: float = -60.0,
    ) -> None:
        super().__init__()
        sources = [str(s) for s in sources] if sources is not None else []
        if not sources or len(set(sources)) != len(sources) or "mixture" in sources:
            raise ValueError(
                f"data.sources must be a non-empty list of distinct source names other than 'mixture', "
                f"got {sources}"
            )
        if fmt not in ("auto", "wav", "stem"):
            raise ValueError(f"data.fmt must be 'auto', 'wav' or 'stem', got {fmt!r}")
        if isinstance(valid_tracks, str) and valid_tracks != "auto":
            raise ValueError(
                f"data.valid_tracks must be 'auto', a list of track names or null, got {valid_tracks!r}"
            )
        for key, value in (
            ("chunk_seconds", chunk_seconds),
            ("samples_per_epoch", samples_per_epoch),
            ("batch_size", batch_size),
            ("eval_batch_size", eval_batch_size),
            ("sample_rate", sample_rate),
        ):
            if value is None or value <= 0:
                raise ValueError(f"data.{key} must be positive, got {value!r}")
        if valid_segment_seconds is not None and valid_segment_seconds <= 0:
            raise ValueError(
                f"data.valid_segment_seconds must be positive or null, got {valid_segment_seconds!r}"
            )
        if valid_segment_seconds is None and eval_batch_size != 1:
            raise ValueError(
                f"data.eval_batch_size={eval_batch_size} needs equal-length items: full-track validation "
                "(data.valid_segment_seconds=null) only works with data.eval_batch_size=1"
            )
        if gain_range_db is not None:
            gain_range_db = (float(gain_range_db[0]), float(gain_range_db[1]))
            if gain_range_db[0] > gain_range_db[1]:
                raise ValueError(
                    f"data.gain_range_db must be [low, high] with low <= high, got {gain_range_db}"
                )
        if not 0.0 <= remix_prob <= 1.0:
            raise ValueError(f"data.remix_prob must be in [0, 1], got {remix_prob!r}")
        if silent_chunk_retries < 0 or num_workers < 0:
            raise ValueError(
                f"data.silent_chunk_retries and data.num_workers must be >= 0, got "
                f"{silent_chunk_retries!r} and {num_workers!r}"
            )
        self.save_hyperparameters(logger=False)

        self.root = root
        self.sources: list[str] = sources
        self.sample_rate = int(sample_rate)
        self.fmt = fmt
        self.valid_tracks = (
            valid_tracks if valid_tracks is None or valid_tracks == "auto" else list(valid_tracks)
        )
        self.chunk_seconds = float(chunk_seconds)
        self.chunk_frames = int(round(chunk_seconds * sample_rate))
        self.samples_per_epoch = int(samples_per_epoch)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.num_workers = int(num_workers)
        self.valid_segment_seconds = valid_segment_seconds
        self.gain_range_db = gain_range_db
        self.channel_swap = bool(channel_swap)
        self.remix_prob = float(remix_prob)
        self.silent_chunk_retries = int(silent_chunk_retries)
        self.seed = int(seed)
        self.pin_memory = bool(pin_memory)
        self.silence_threshold_db = float(silence_threshold_db)

        self._root: Path | None = None
        self._format: str | None = None
        self._manifest: dict | None = None
        self._tracks: dict[str, list[Track]] = {}
        self.train_set: TrainChunkDataset | None = None
        self.valid_set: EvalDataset | None = None
        self.test_set: EvalDataset | None = None

    # ------------------------------------------------------------------ index
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

    def _open_root(self) -> Path:
        """Check the root, read and check the manifest, detect the format (once)."""
        if self._root is not None:
            return self._root
        root = check_root(self.root)
        manifest = read_manifest(root)
        if manifest is not None:
            self._check_manifest(root, manifest)
        fmt = detect_format(root) if self.fmt == "auto" else self.fmt
        self._root, self._manifest, self._format = root, manifest, fmt
        return root

    def _check_manifest(self, root: Path, manifest: dict) -> None:
        path = root / MANIFEST_NAME
        declared = manifest.get("sources")
        if declared is not None and set(map(str, declared)) != set(self.sources):
            raise DatasetError(
                f"the sources in {path} ({list(declared)}) differ from the configured sources "
                f"data.sources={self.sources}; configure the dataset's sources (any order)."
            )
        rate = manifest.get("sample_rate")
        if rate is not None and int(rate) != self.sample_rate:
            raise DatasetError(
                f"{path} declares sample_rate {rate} Hz but data.sample_rate={self.sample_rate}; set "
                f"data.sample_rate={rate}."
            )

    def _index(self) -> None:
        """Build the train/valid/test track lists (once; headers only)."""
        if self._tracks:
            return
        root = self._open_root()
        assert self._format is not None
        sources = tuple(self.sources)
        found = {f: index_folder(root, f, sources, self.sample_rate, self._format) for f in ("train", "test")}
        if not found["train"] and not found["test"]:
            raise DatasetError(
                f"dataset root {root} contains no train/test tracks ({self._format}). {LAYOUT_HELP}"
            )
        all_tracks = found["train"] + found["test"]
        channels = {t.num_channels for t in all_tracks}
        if len(channels) > 1:
            counts = {t.name: t.num_channels for t in all_tracks}
            raise DatasetError(
                f"tracks in {root} have different channel counts, which cannot be batched: {counts}"
            )

        wanted = self._validation_names()
        names = {t.name for t in found["train"]}
        missing = [n for n in wanted if n not in names]
        if missing:
            raise DatasetError(
                f"validation tracks {missing} are not in {root / 'train'} (data.valid_tracks="
                f"{self.valid_tracks!r}). Use a root that contains them, list other tracks, or set "
                "data.valid_tracks=null for no validation."
            )
        valid_set = set(wanted)
        self._tracks = {
            "train": [t for t in found["train"] if t.name not in valid_set],
            "valid": [replace(t, split="valid") for t in found["train"] if t.name in valid_set],
            "test": found["test"],
        }

    def _validation_names(self) -> list[str]:
        if self.valid_tracks is None:
            return []
        if self.valid_tracks != "auto":
            return list(self.valid_tracks)
        if self._manifest is not None:
            if "validation_tracks" not in self._manifest:
                raise DatasetError(
                    f"{self._root / MANIFEST_NAME} has no 'validation_tracks'; set data.valid_tracks to a list "
                    "of track names or null."
                )
            return [str(n) for n in self._manifest["validation_tracks"]]
        return musdb_validation_tracks()

    def tracks(self, split: str) -> list[Track]:
        """The tracks of ``split`` (``"train"``, ``"valid"`` or ``"test"``), sorted by name."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self._index()
        return list(self._tracks[split])

    # ------------------------------------------------------------- datasets
    def setup(self, stage: str | None = None) -> None:
        """Build the datasets ``stage`` needs (``fit``, ``validate``, ``test``, ``predict`` or ``None``: all)."""
        self._index()
        if stage in (None, "fit"):
            train = self.tracks("train")
            if not train:
                raise DatasetError(
                    f"no training tracks in {self._root / 'train'} (after removing the validation tracks). "
                    f"{LAYOUT_HELP}"
                )
            self.train_set = TrainChunkDataset(
                train,
                self.sources,
                chunk_frames=self.chunk_frames,
                samples_per_epoch=self.samples_per_epoch,
                seed=self.seed,
                gain_range_db=self.gain_range_db,
                channel_swap=self.channel_swap,
                remix_prob=self.remix_prob,
                silent_chunk_retries=self.silent_chunk_retries,
                silence_threshold_db=self.silence_threshold_db,
            )
        if stage in (None, "fit", "validate"):
            self.valid_set = EvalDataset(self.tracks("valid"), self.valid_segment_frames)
        if stage in (None, "test", "predict"):
            test = self.tracks("test")
            if not test and stage is not None:
                raise DatasetError(f"no test tracks in {self._root / 'test'}. {LAYOUT_HELP}")
            self.test_set = EvalDataset(test, None)
