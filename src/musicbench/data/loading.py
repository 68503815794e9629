"""What every datamodule shares: the samplers, the dataset bases and the train/valid/test DataLoaders.

- Training: random chunks; item ``index`` is a pure function of ``(seed, index)`` (:func:`item_rng`), and
  the :class:`EpochSampler` hands out indices ``epoch * samples_per_epoch + i``, so every epoch draws new
  chunks, identically in every run and for any number of workers.
- Validation: consecutive fixed segments of ``valid_segment_seconds`` (or full tracks).
- Test: full tracks, batch size 1, in ``tracks("test")`` order (what the evaluation runner reads).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from musicbench.data.augment import is_silent
from musicbench.data.tracks import DatasetError, fit_length
from musicbench.errors import ConfigError
from musicbench.utils.hashcache import FileHashes

log = logging.getLogger(__name__)


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


class ResumableLoader(DataLoader):
    """A training DataLoader that can start in the middle of an epoch: its next iteration leaves out the
    first ``skip_batches`` batches (their indices are never fetched), then it iterates as usual.

    Skipping whole batches of the batch sampler, after Lightning's distributed sampler has split the
    indices between the ranks, leaves every rank with the batches it had not trained on.
    """

    def __init__(self, *args: Any, skip_batches: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skip_batches = int(skip_batches)

    @property
    def _index_sampler(self) -> Any:
        return _SkipFirst(super()._index_sampler, self)


class _SkipFirst:
    """Iterates ``batches`` without the first ``loader.skip_batches`` (then sets that to 0: once)."""

    def __init__(self, batches: Iterable[Any], loader: ResumableLoader) -> None:
        self.batches = batches
        self.loader = loader

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        # A generator: the count is taken at the first batch drawn, not when an iterator is made (a
        # DataLoader iterator makes one it never uses before the one it draws from).
        skip, self.loader.skip_batches = self.loader.skip_batches, 0
        yield from itertools.islice(iter(self.batches), skip, None)


@dataclass(frozen=True)
class ChunkSampling:
    """How training chunks are drawn.

    Attributes:
        chunk_frames: chunk length in samples.
        samples_per_epoch: items per epoch (the dataset's ``len``).
        seed: items are a pure function of ``(seed, index)``.
        silent_chunk_retries: redraws of a chunk that is silent (then the last draw is kept).
        silence_threshold_db: mean power in dBFS at or below which a chunk counts as silent.
    """

    chunk_frames: int
    samples_per_epoch: int
    seed: int = 0
    silent_chunk_retries: int = 10
    silence_threshold_db: float = -60.0


class RandomChunks(Dataset):
    """Base of the training datasets: random chunks of random tracks, redrawn while silent.

    Item ``index`` (any non-negative int; ``__len__`` is ``samples_per_epoch``) is drawn by ``_draw`` with
    ``item_rng(seed, index)``; if the side that ``_audible`` picks is silent, it is drawn again with the same
    generator, up to ``silent_chunk_retries`` times. Subclasses implement ``_draw``.

    Returns:
        ``(input (C, chunk_frames), targets (S, C, chunk_frames))`` float32.
    """

    def __init__(self, tracks: Sequence[Any], sampling: ChunkSampling) -> None:
        if not tracks:
            raise DatasetError(f"{type(self).__name__} needs at least one training track")
        self.tracks = list(tracks)
        self.sampling = sampling
        self.chunk_frames = int(sampling.chunk_frames)

    def __len__(self) -> int:
        return self.sampling.samples_per_epoch

    def _draw_position(self, rng: np.random.Generator) -> tuple[int, int]:
        """A random ``(track index, frame offset)``: each track equally likely (as in Open-Unmix), the offset
        uniform in ``[0, num_frames - chunk_frames]`` (0 for a track shorter than the chunk)."""
        t = int(rng.integers(len(self.tracks)))
        span = self.tracks[t].num_frames - self.chunk_frames
        return t, int(rng.integers(span + 1)) if span > 0 else 0

    def _draw(self, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """One candidate item ``(input, targets)``, drawing from ``rng`` only."""
        raise NotImplementedError

    def _audible(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """What must not be silent: the input (the mixture) unless a subclass says otherwise."""
        return inputs

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        rng = item_rng(self.sampling.seed, index)
        for _ in range(self.sampling.silent_chunk_retries + 1):
            inputs, targets = self._draw(rng)
            if not is_silent(self._audible(inputs, targets), self.sampling.silence_threshold_db):
                break
        return inputs.contiguous(), targets.contiguous()


class EvalDataset(Dataset):
    """Deterministic items for validation/testing: full tracks or consecutive fixed-length segments.

    With ``segment_frames=None`` each item is a full track. Otherwise each track yields the segments
    starting at ``0, L, 2L, ...`` that fit entirely in the track (the remainder shorter than ``L`` at the end
    is left out); a track shorter than ``L`` yields one segment, zero-padded to ``L``.

    Attributes:
        items: ``(track, frame_offset, num_frames)`` per item (``num_frames=-1``: to the end).

    Returns:
        ``(input (C, T), targets (S, C, T))`` float32 from ``track.load``: for separation the dataset's
        mixture file/stream and the sources, for MP3 pairs the decoded MP3 and the clean audio.
    """

    def __init__(self, tracks: Sequence[Any], segment_frames: int | None = None) -> None:
        self.tracks = list(tracks)
        self.segment_frames = None if segment_frames is None else int(segment_frames)
        self.items: list[tuple[Any, int, int]] = []
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


def _kind_name(kind: type) -> str:
    """``Integral`` -> ``"an integer"``, ``Real`` -> ``"a number"`` (for messages)."""
    return "an integer" if kind is Integral else "a number"


class SplitLoaders(pl.LightningDataModule):
    """Base of the datamodules: the settings of their DataLoaders and the loaders themselves.

    Subclasses implement ``tracks(split)`` and a ``setup`` that builds ``train_set`` (a :class:`RandomChunks`
    drawn through an :class:`EpochSampler`), ``valid_set`` and ``test_set`` (:class:`EvalDataset`).

    Args:
        sample_rate: rate of the items in Hz; converts the lengths in seconds below to samples.
        chunk_seconds: training chunk length in seconds (``round(chunk_seconds * sample_rate)`` samples).
        samples_per_epoch: training items per epoch.
        batch_size: training batch size per process (Lightning's convention: with DDP the global batch is
            ``batch_size * devices * num_nodes``).
        eval_batch_size: validation batch size per process (must be 1 when validating on full tracks).
        num_workers: DataLoader worker processes (persistent when > 0).
        valid_segment_seconds: validation segment length in seconds; ``None`` validates on full tracks.
        seed: seed of the training chunks (items are a function of ``(seed, index)``).
        silent_chunk_retries: redraws of a silent training chunk.
        silence_threshold_db: mean power in dBFS at or below which a training chunk counts as silent.
        pin_memory: passed to the DataLoaders.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 44100,
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
    ) -> None:
        super().__init__()
        # Types too: a config that skipped the schema (a checkpoint's, Python callers) names the key.
        for key, value, kind in (
            ("chunk_seconds", chunk_seconds, Real),
            ("samples_per_epoch", samples_per_epoch, Integral),
            ("batch_size", batch_size, Integral),
            ("eval_batch_size", eval_batch_size, Integral),
            ("sample_rate", sample_rate, Integral),
        ):
            if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
                raise ConfigError(f"data.{key} must be positive ({_kind_name(kind)}), got {value!r}")
        for key, value in (("num_workers", num_workers), ("silent_chunk_retries", silent_chunk_retries)):
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise ConfigError(f"data.{key} must be an integer, got {value!r}")
        if valid_segment_seconds is not None and (
            isinstance(valid_segment_seconds, bool) or not isinstance(valid_segment_seconds, Real)
        ):
            raise ConfigError(
                f"data.valid_segment_seconds must be a number or null, got {valid_segment_seconds!r}"
            )
        if valid_segment_seconds is not None and valid_segment_seconds <= 0:
            raise ConfigError(
                f"data.valid_segment_seconds must be positive or null, got {valid_segment_seconds!r}"
            )
        if valid_segment_seconds is None and eval_batch_size != 1:
            raise ConfigError(
                f"data.eval_batch_size={eval_batch_size} needs equal-length items: full-track validation "
                "(data.valid_segment_seconds=null) only works with data.eval_batch_size=1"
            )
        if silent_chunk_retries < 0 or num_workers < 0:
            raise ConfigError(
                f"data.silent_chunk_retries and data.num_workers must be >= 0, got "
                f"{silent_chunk_retries!r} and {num_workers!r}"
            )
        self.sample_rate = int(sample_rate)
        self.chunk_seconds = float(chunk_seconds)
        self.samples_per_epoch = int(samples_per_epoch)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.num_workers = int(num_workers)
        self.valid_segment_seconds = valid_segment_seconds
        self.pin_memory = bool(pin_memory)
        self.sampling = ChunkSampling(
            chunk_frames=int(round(chunk_seconds * sample_rate)),
            samples_per_epoch=self.samples_per_epoch,
            seed=int(seed),
            silent_chunk_retries=int(silent_chunk_retries),
            silence_threshold_db=float(silence_threshold_db),
        )
        self.train_set: RandomChunks | None = None
        self._resume_at: tuple[int, int] | None = None
        self.valid_set: EvalDataset | None = None
        self.test_set: EvalDataset | None = None

    @property
    def chunk_frames(self) -> int:
        """Training chunk length in samples."""
        return self.sampling.chunk_frames

    @property
    def valid_segment_frames(self) -> int | None:
        """Validation segment length in samples (``valid_segment_seconds``; ``None``: whole tracks)."""
        if self.valid_segment_seconds is None:
            return None
        return int(round(self.valid_segment_seconds * self.sample_rate))

    def tracks(self, split: str) -> list[Any]:
        """The tracks (items with ``load``) of ``split``: ``"train"``, ``"valid"`` or ``"test"``."""
        raise NotImplementedError

    def check_files(self, hashes: FileHashes) -> None:
        """Check the dataset's files against the hashes its manifest records, if it has one (raises
        :class:`~musicbench.data.tracks.DatasetError` naming the file); ``hashes`` caches the file hashes."""

    def _loader(
        self, dataset: Dataset, batch_size: int, sampler: Sampler | None = None, skip_batches: int = 0
    ) -> DataLoader:
        return ResumableLoader(
            dataset,
            skip_batches=skip_batches,
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
        sampler = EpochSampler(self.samples_per_epoch)
        if self.trainer is not None:
            # Start at the epoch Lightning passes to set_epoch next: DataLoader workers fetch their first
            # items when the iterator is created, before that call (it matters when a run resumes).
            sampler.set_epoch(self.trainer.fit_loop.epoch_progress.current.processed)
        skip = 0
        if self._resume_at is not None:
            epoch, skip = self._resume_at
            self._resume_at = None
            if epoch != sampler.epoch:
                log.warning(
                    "resume point of epoch %d, but the loader starts epoch %d: not skipping",
                    epoch,
                    sampler.epoch,
                )
                skip = 0
        return self._loader(self.train_set, self.batch_size, sampler, skip_batches=skip)

    def resume_within_epoch(self, epoch: int, batches_done: int) -> None:
        """The next training DataLoader starts epoch ``epoch`` after its first ``batches_done`` batches:
        a run resumed from a checkpoint written mid-epoch (:mod:`musicbench.preemption`) trains on the
        batches the interrupted run had not reached, as an uninterrupted run would (items are a function
        of their index: nothing is loaded or drawn for the skipped ones)."""
        self._resume_at = (int(epoch), int(batches_done))

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches; an empty list (Lightning then skips validation) when there are no tracks."""
        if self.valid_set is None:
            self.setup("validate")
        assert self.valid_set is not None
        if len(self.valid_set) == 0:
            return []
        return self._loader(self.valid_set, self.eval_batch_size, self._shard(self.valid_set))

    def _shard(self, dataset: EvalDataset) -> Sampler | None:
        """With several processes: this process's share of ``dataset`` (items ``rank, rank + world, ...``),
        without the repeated items Lightning's own distributed sampler pads with (they would count twice
        in a validation mean; ``System.log_items`` reduces sums and counts instead). ``None`` otherwise."""
        trainer = self.trainer
        if trainer is None or trainer.world_size <= 1:
            return None
        if len(dataset) < trainer.world_size:
            raise ConfigError(
                f"the validation set has {len(dataset)} item(s), fewer than the {trainer.world_size} "
                "processes, and each process needs one: validate on more tracks (data.valid_tracks), on "
                "shorter segments (data.valid_segment_seconds), or with fewer trainer.devices"
            )
        return UnrepeatedDistributedSampler(
            dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
        )

    def test_dataloader(self) -> DataLoader:
        """Full test tracks, one per batch, in ``tracks("test")`` order."""
        if self.test_set is None:
            self.setup("test")
        assert self.test_set is not None
        return self._loader(self.test_set, 1)
