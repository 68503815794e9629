"""The shared loading pieces: the epoch sampler, random chunks, evaluation items and the loader settings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from musicbench.data.loading import (
    ChunkSampling,
    EpochSampler,
    EvalDataset,
    RandomChunks,
    ResumableLoader,
    SplitLoaders,
)


@dataclass(frozen=True)
class Ramp:
    """A fake track: mixture = sample index, one target = minus it (``load`` as a Track's)."""

    name: str
    num_frames: int

    def load(self, frame_offset: int = 0, num_frames: int = -1):
        end = self.num_frames if num_frames < 0 else min(self.num_frames, frame_offset + num_frames)
        x = torch.arange(frame_offset, end, dtype=torch.float32).expand(2, -1)
        return x, -x[None]


def test_epoch_sampler_moves_on_without_set_epoch() -> None:
    # Without set_epoch, iterating again moves on to the next epoch.
    sampler = EpochSampler(3)
    assert list(sampler) == [0, 1, 2] and list(sampler) == [3, 4, 5]
    sampler.set_epoch(0)
    assert list(sampler) == [0, 1, 2] and len(sampler) == 3


def test_validation_shards_without_padding() -> None:
    """Several processes: rank r validates items r, r + world, ... (no repeated items); each needs one."""
    from types import SimpleNamespace

    from musicbench.errors import ConfigError

    loaders = SplitLoaders(sample_rate=10, valid_segment_seconds=1.0)
    loaders.valid_set = EvalDataset([Ramp("a", 50)], segment_frames=10)  # 5 items
    assert loaders._shard(loaders.valid_set) is None  # no trainer: one process
    shards = []
    for rank in range(2):
        loaders.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        shards.append(list(loaders.val_dataloader().sampler))
    assert shards == [[0, 2, 4], [1, 3]]
    loaders.trainer = SimpleNamespace(world_size=6, global_rank=0)
    with pytest.raises(ConfigError, match="5 item.*fewer than the 6 processes"):
        loaders.val_dataloader()


def test_processes_split_each_epochs_training_items() -> None:
    """Under DDP Lightning wraps the EpochSampler in its distributed sampler wrapper: the processes take
    turns through each epoch's indices, so together they train on the items one process would (also
    from a resumed epoch)."""
    from lightning_fabric.utilities.distributed import DistributedSamplerWrapper

    for start in (0, 3):
        per_rank = []
        for rank in range(2):
            sampler = EpochSampler(6)
            sampler.set_epoch(start)  # as train_dataloader does
            wrapper = DistributedSamplerWrapper(sampler, num_replicas=2, rank=rank, shuffle=False)
            epochs = []
            for epoch in (start, start + 1):
                wrapper.set_epoch(epoch)  # as Lightning does before every epoch
                epochs.append(list(wrapper))
            per_rank.append(epochs)
        for k, epoch in enumerate((start, start + 1)):
            assert sorted(per_rank[0][k] + per_rank[1][k]) == list(range(6 * epoch, 6 * epoch + 6))
            assert per_rank[0][k] == list(range(6 * epoch, 6 * epoch + 6, 2))


def test_eval_dataset_segments_and_full_tracks() -> None:
    tracks = [Ramp("a", 10), Ramp("b", 3)]
    segments = EvalDataset(tracks, segment_frames=4)
    # 10 samples: the segments at 0 and 4 (the last 2 samples are left out); 3 samples: one, zero-padded.
    assert [(t.name, o, n) for t, o, n in segments.items] == [("a", 0, 4), ("a", 4, 4), ("b", 0, 4)]
    mixture, targets = segments[1]
    assert mixture[0].tolist() == [4, 5, 6, 7] and targets.shape == (1, 2, 4)
    assert segments[2][0][0].tolist() == [0, 1, 2, 0]
    full = EvalDataset(tracks)
    assert len(full) == 2 and full[0][0].shape == (2, 10)


class Constant(RandomChunks):
    """Draws a chunk whose level is a uniform draw; levels below 0.5 are made silent."""

    def _draw(self, rng: np.random.Generator):
        t, offset = self._draw_position(rng)
        level = float(rng.random())
        x = torch.full((2, self.chunk_frames), level if level >= 0.5 else 0.0)
        return x, x[None]


def test_random_chunks_are_pure_functions_of_seed_and_index_and_redrawn_while_silent() -> None:
    tracks = [Ramp("a", 100), Ramp("b", 5)]
    retry = Constant(
        tracks, ChunkSampling(chunk_frames=8, samples_per_epoch=4, seed=3, silent_chunk_retries=20)
    )
    no_retry = Constant(
        tracks, ChunkSampling(chunk_frames=8, samples_per_epoch=4, seed=3, silent_chunk_retries=0)
    )
    assert len(retry) == 4
    assert torch.equal(retry[7][0], retry[7][0])
    assert all(float(retry[i][0].abs().max()) > 0 for i in range(30))
    assert any(float(no_retry[i][0].abs().max()) == 0 for i in range(30))
    with pytest.raises(ValueError, match="needs at least one training track"):
        Constant([], ChunkSampling(8, 4))


def test_split_loaders_settings() -> None:
    loaders = SplitLoaders(sample_rate=8000, chunk_seconds=0.25, valid_segment_seconds=0.5, seed=4)
    assert loaders.chunk_frames == 2000 and loaders.valid_segment_frames == 4000
    assert loaders.sampling == ChunkSampling(2000, 256, 4, 10, -60.0)
    assert SplitLoaders(valid_segment_seconds=None).valid_segment_frames is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(batch_size=0), "data.batch_size must be positive"),
        (dict(chunk_seconds=-1.0), "data.chunk_seconds must be positive"),
        (dict(samples_per_epoch=0), "data.samples_per_epoch"),
        (dict(valid_segment_seconds=0.0), "data.valid_segment_seconds must be positive or null"),
        (dict(valid_segment_seconds=None, eval_batch_size=4), "full-track validation"),
        (dict(num_workers=-1), "data.num_workers"),
    ],
)
def test_split_loaders_reject_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SplitLoaders(**kwargs)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_resumable_loader_skips_its_first_batches_once(num_workers):
    """A run resumed mid-epoch: the next iteration starts after the batches already trained on, without
    fetching them; later epochs are whole; the length (what Lightning counts an epoch by) is unchanged."""
    fetched: list[int] = []

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 1000

        def __getitem__(self, i):
            fetched.append(i)
            return i

    kw = dict(batch_size=2, num_workers=num_workers, persistent_workers=num_workers > 0)
    loader = ResumableLoader(Items(), sampler=EpochSampler(8), skip_batches=3, **kw)
    assert len(loader) == 4
    assert [b.tolist() for b in loader] == [[6, 7]]
    assert [b.tolist() for b in loader] == [[8, 9], [10, 11], [12, 13], [14, 15]]
    if num_workers == 0:
        assert sorted(fetched) == list(range(6, 16))  # the skipped items were never loaded
