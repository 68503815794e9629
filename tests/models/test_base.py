"""The base System: optimizers from partial factories, chunked inference, the default evaluation systems."""

import functools

import pytest
import torch
from torch import nn

from musicbench.models.base import ItemMeans, System, build_optimizer, per_item, track_seed


class Gain(System):
    """Two sources: the input scaled by a learnt gain, and the input itself."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.gain = nn.Parameter(torch.tensor(0.5))

    def estimate(self, audio):
        return torch.stack([self.gain * audio, audio], dim=1)


def _adam(**kw):
    return functools.partial(torch.optim.Adam, lr=1e-3)


def test_separate_is_the_one_pass_estimate_chunk_by_chunk():
    model = Gain(sample_rate=100, chunk_seconds=1.0, context_seconds=0.2, crossfade_seconds=0.1)
    audio = torch.randn(1, 2, 450)
    torch.testing.assert_close(model.separate(audio), model.estimate(audio))


def test_default_systems_are_the_one_model_estimate():
    model = Gain(sample_rate=100, chunk_seconds=1.0, crossfade_seconds=0.1)
    audio = torch.randn(2, 300)
    systems = model.estimate_systems(audio, "track")
    assert list(systems) == ["model"]
    assert systems["model"].shape == (2, 2, 300)
    torch.testing.assert_close(systems["model"], model.separate(audio[None])[0])


def test_optimizer_and_scheduler_come_from_partial_factories():
    step = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1)
    assert isinstance(Gain(optimizer=_adam()).configure_optimizers(), torch.optim.Adam)
    config = Gain(optimizer=_adam(), scheduler=step).configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.Adam)
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)
    # Nothing to train: no optimizer, or no trainable parameter.
    assert Gain().configure_optimizers() is None
    frozen = Gain(optimizer=_adam())
    frozen.gain.requires_grad_(False)
    assert frozen.configure_optimizers() is None
    opt, sched = build_optimizer(_adam(), None, [nn.Parameter(torch.zeros(1))])
    assert isinstance(opt, torch.optim.Adam) and sched is None


def test_a_system_without_estimate_says_so():
    with pytest.raises(NotImplementedError, match="System must define estimate"):
        System().separate(torch.zeros(1, 1, 10))


def test_track_seed_is_stable_and_31_bit():
    assert track_seed("bwv101.7") == track_seed("bwv101.7") != track_seed("bwv101.7", base=1)
    assert 0 <= track_seed("x" * 1000, base=2**40) < 2**31 - 1


def test_item_means_over_shards_equal_the_mean_over_all_items():
    """Two processes' sums and counts, added up, give the mean over all items; Lightning's mean of the
    processes' means (sync_dist=True) would not, with unequal shards."""
    values = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0])
    shards = [values[0::2], values[1::2]]  # 3 and 2 items, as an unpadded sampler splits 5
    means = []
    for shard in shards:
        m = ItemMeans()
        m.update("val/x", shard[:2])
        m.update("val/x", shard[2:])  # a second batch
        means.append(m)
    # Process 0's compute, with the all-reduce that adds process 1's (sum, count).
    result = means[0].compute(lambda t: t + means[1]._totals["val/x"][None])
    assert result["val/x"].dtype == torch.float64
    assert float(result["val/x"]) == pytest.approx(float(values.mean()))
    assert float(torch.stack([s.mean() for s in shards]).mean()) != pytest.approx(float(values.mean()))
    assert ItemMeans().compute(lambda t: t) == {}


def test_per_item_applies_a_batch_mean_to_each_item_alone():
    a, b = torch.randn(3, 2, 10), torch.randn(3, 2, 10)
    values = per_item(torch.nn.functional.l1_loss, a, b)
    assert values.shape == (3,)
    torch.testing.assert_close(values, (a - b).abs().mean(dim=(1, 2)))
