"""The separation datamodule: MUSDB18 / MUSDB18-HQ and datasets in the same layout (our chorales).

Items are ``(mixture, targets)`` with mixture ``(C, T)`` and targets ``(S, C, T)`` float32, the sources in
the configured order; batches add a leading batch dimension.

- Training: random chunks with source-level augmentation (``data.augmentations``) and remixing across
  tracks (``data.remix_prob``); the mixture is the sum of the augmented targets.
- Validation: consecutive fixed segments of ``valid_segment_seconds`` (or full tracks); mixture file.
- Test: full tracks, batch size 1; mixture file. ``tracks("test")`` is what the evaluation runner reads.

The tracks come from a :class:`~musicbench.data.musdb_index.MusdbIndex`; the loaders, samplers and
evaluation datasets from :mod:`musicbench.data.loading`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from musicbench.data.augment import Transform
from musicbench.data.loading import ChunkSampling, EvalDataset, RandomChunks, SplitLoaders
from musicbench.data.musdb_index import LAYOUT_HELP, MusdbIndex
from musicbench.data.splits import TEST, TRAIN, VALID
from musicbench.data.tracks import DatasetError, Track, fit_length
from musicbench.errors import ConfigError
from musicbench.utils.hashcache import FileHashes

log = logging.getLogger(__name__)

__all__ = ["DatasetError", "MusdbDataModule", "TrainChunkDataset", "Track"]

# Augmentation keys of data configs written before data.augmentations (e.g. inside older checkpoints), and
# the transform that holds each setting now.
_MOVED_KEYS = {"gain_range_db": "data.augmentations.gain", "channel_swap": "data.augmentations.channel_swap"}


class TrainChunkDataset(RandomChunks):
    """Random augmented chunks of random training tracks.

    Item ``index`` is drawn with ``item_rng(seed, index)``:

    1. a track uniformly at random (each track equally likely, as in Open-Unmix) and an offset uniformly
       in ``[0, num_frames - chunk_frames]``; tracks shorter than the chunk are read whole and zero-padded
       at the end;
    2. with probability ``remix_prob``, independently per source, that source instead comes from its own
       random track and offset (possibly the same track), which mixes sources across tracks;
    3. the ``augmentations``, in order, on the stacked sources (e.g. a gain and a left/right swap per
       source);
    4. mixture = sum of the augmented sources; if its mean power is at or below ``silence_threshold_db``
       dBFS, steps 1-4 are redrawn, up to ``silent_chunk_retries`` times (then the last draw is kept).

    Returns:
        ``(mixture (C, chunk_frames), targets (S, C, chunk_frames))`` float32.
    """

    def __init__(
        self,
        tracks: Sequence[Track],
        sources: Sequence[str],
        sampling: ChunkSampling,
        augmentations: Sequence[Transform] = (),
        remix_prob: float = 0.0,
    ) -> None:
        super().__init__(tracks, sampling)
        self.sources = tuple(sources)
        self.augmentations = list(augmentations)
        self.remix_prob = float(remix_prob)

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
        for augment in self.augmentations:
            targets = augment(targets, rng)
        return targets.sum(0), targets


class MusdbDataModule(SplitLoaders):
    """MUSDB18-HQ (wav), MUSDB18 (.stem.mp4) and the chorales (wav + manifest.json) as a LightningDataModule.

    Args:
        root: dataset root holding ``train/`` and ``test/`` (and ``manifest.json`` for generated datasets).
        sources: target sources in output order. Training mixtures are the sum of these, so list every
            source that makes up the mixture. Must equal (as a set) the manifest's ``sources`` if there is one.
        sample_rate: expected rate of every file in Hz; files at another rate are an error (no resampling).
        fmt: ``"auto"`` (detect from the files), ``"wav"`` or ``"stem"``.
        valid_tracks: ``"auto"`` (the manifest's ``validation_tracks``, else the musdb package's standard
            14-track subset), a list of track names from ``train/``, or ``None`` for no validation.
        augmentations: name -> transform (``(targets, rng) -> targets``, e.g.
            :class:`~musicbench.data.augment.RandomGain`), applied to training chunks in this order;
            ``None`` entries are switched off. ``None``: no augmentation.
        remix_prob: per-source probability of taking the source from another random chunk/track.
        **loading: the loader settings of :class:`~musicbench.data.loading.SplitLoaders` (``chunk_seconds``,
            ``samples_per_epoch``, ``batch_size``, ``eval_batch_size``, ``num_workers``,
            ``valid_segment_seconds``, ``seed``, ``silent_chunk_retries``, ``silence_threshold_db``,
            ``pin_memory``).
    """

    def __init__(
        self,
        root: str | Path,
        sources: Sequence[str],
        sample_rate: int = 44100,
        fmt: str = "auto",
        valid_tracks: str | Sequence[str] | None = "auto",
        augmentations: Mapping[str, Transform | None] | None = None,
        remix_prob: float = 0.0,
        **loading: Any,
    ) -> None:
        moved = sorted(set(loading) & set(_MOVED_KEYS))
        if moved:
            raise ConfigError(
                f"data.{moved[0]} is now the transform {_MOVED_KEYS[moved[0]]}; this data config predates "
                "data.augmentations (a checkpoint of an older version?): pass the data config on the command "
                "line, e.g. `mb-eval ckpt_path=... data=chorales data_from_checkpoint=false`"
            )
        super().__init__(sample_rate=sample_rate, **loading)
        self.index = MusdbIndex(root, sources, sample_rate, fmt, valid_tracks, config_key="data")
        if not 0.0 <= remix_prob <= 1.0:
            raise ConfigError(f"data.remix_prob must be in [0, 1], got {remix_prob!r}")
        self.augmentations = _transforms(augmentations)
        self.remix_prob = float(remix_prob)
        # Lightning stores these in every checkpoint, which resuming loads with torch's weights-only
        # unpickler: plain values only (no ListConfig, no transform objects; the resolved config in the
        # checkpoint records the augmentations).
        sources, valid_tracks = list(self.index.sources), self.index.valid_tracks
        self.save_hyperparameters(ignore=["augmentations"], logger=False)

    @property
    def root(self) -> str | Path:
        """The dataset root as configured."""
        return self.index.root

    @property
    def sources(self) -> list[str]:
        """The target sources, in output order."""
        return list(self.index.sources)

    @property
    def format(self) -> str:
        """The on-disk format in use, ``"wav"`` or ``"stem"`` (detected when ``fmt="auto"``)."""
        return self.index.format

    @property
    def manifest(self) -> dict | None:
        """The dataset's ``manifest.json`` contents, or ``None`` (plain MUSDB18)."""
        return self.index.manifest

    def tracks(self, split: str) -> list[Track]:
        """The tracks of ``split`` (``"train"``, ``"valid"`` or ``"test"``), sorted by name."""
        return self.index.tracks(split)

    def check_files(self, hashes: FileHashes) -> None:
        """Check the files against ``manifest.json``'s hashes (see :meth:`MusdbIndex.check_files`)."""
        self.index.check_files(hashes)

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets ``stage`` needs (``fit``, ``validate``, ``test``, ``predict`` or ``None``: all)."""
        if stage in (None, "fit"):
            train = self.tracks(TRAIN)
            if not train:
                raise DatasetError(
                    f"no training tracks in {self.index.split_dir(TRAIN)} (after removing the validation "
                    f"tracks). {LAYOUT_HELP}"
                )
            self.train_set = TrainChunkDataset(
                train, self.sources, self.sampling, self.augmentations, self.remix_prob
            )
        if stage in (None, "fit", "validate"):
            self.valid_set = EvalDataset(self.tracks(VALID), self.valid_segment_frames)
        if stage in (None, "test", "predict"):
            test = self.tracks(TEST)
            if not test and stage is not None:
                raise DatasetError(f"no test tracks in {self.index.split_dir(TEST)}. {LAYOUT_HELP}")
            self.test_set = EvalDataset(test, None)


def _transforms(augmentations: Mapping[str, Transform | None] | None) -> list[Transform]:
    """The switched-on transforms of ``data.augmentations``, in config order; a clear error for anything
    that is not a transform."""
    if augmentations is None:
        return []
    if not isinstance(augmentations, Mapping):
        raise ConfigError(
            "data.augmentations must map names to transforms ({name: {_target_: ...}}), got "
            f"{type(augmentations).__name__}"
        )
    out = []
    for name, transform in augmentations.items():
        if transform is None:  # `data.augmentations.<name>=null` switches one off
            continue
        if not callable(transform):
            raise ConfigError(
                f"data.augmentations.{name} must be a transform (a _target_ such as "
                f"musicbench.data.augment.RandomGain), got {transform!r}"
            )
        out.append(transform)
    return out
