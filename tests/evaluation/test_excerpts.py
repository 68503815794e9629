"""Excerpts: the restorations of a model (its samples, or its one estimate) as audio and spectrograms."""

from dataclasses import dataclass

import torch

from musicbench.evaluation.excerpts import restorations, save_excerpts
from musicbench.models.base import System


class Louder(System):
    def estimate(self, audio):
        return (1.5 * audio).unsqueeze(1)


class TwoSamples(Louder):
    def estimate_systems(self, audio, name):
        one = self.separate(audio[None])[0]
        return {"sample_1": 2 * one, "sample_0": one, "mean": 1.5 * one}


@dataclass
class Pair:
    name: str
    sample_rate: int = 2000

    def load(self):
        clean = torch.randn(2, 4000, generator=torch.Generator().manual_seed(0))
        return 0.5 * clean, clean[None]


def _model(cls):
    return cls(sample_rate=2000, chunk_seconds=1.0, context_seconds=0.1, crossfade_seconds=0.1)


def test_restorations_are_the_samples_in_order_else_the_one_estimate():
    degraded = torch.randn(2, 3000)
    (one,) = restorations(_model(Louder), degraded, "t")
    torch.testing.assert_close(one, 1.5 * degraded)
    first, second = restorations(_model(TwoSamples), degraded, "t")
    torch.testing.assert_close(second, 2 * first)


def test_excerpts_are_written_per_track(tmp_path):
    (folder,) = save_excerpts(_model(TwoSamples), [Pair("a"), Pair("b")], tmp_path, num_tracks=1, seconds=1.0)
    assert folder == tmp_path / "excerpts" / "a"
    names = {p.name for p in folder.iterdir()}
    assert names == {"clean.wav", "input.wav", "restored_0.wav", "restored_1.wav", "spectrograms.png"}
