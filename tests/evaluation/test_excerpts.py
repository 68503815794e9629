"""Excerpts: the restorations of a model (its samples, or its one estimate) as audio and spectrograms."""

from dataclasses import dataclass

import pytest
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
    assert names == {
        "clean.wav",
        "input.wav",
        "restored_0.wav",
        "restored_1.wav",
        "spectrograms.png",
        "excerpt.json",
    }


def test_excerpts_are_24_bit_at_the_track_rate_scaled_never_clipped(tmp_path):
    import json

    import soundfile as sf

    (folder,) = save_excerpts(_model(TwoSamples), [Pair("a", sample_rate=88200)], tmp_path, seconds=0.02)
    info = json.loads((folder / "excerpt.json").read_text())
    assert info["sample_rate"] == 88200 and info["subtype"] == "PCM_24"
    first, sr = sf.read(folder / "restored_0.wav")
    second, _ = sf.read(folder / "restored_1.wav")
    assert sr == 88200 and sf.info(folder / "restored_1.wav").subtype == "PCM_24"
    # randn audio doubled exceeds full scale: one gain for every file, recorded, and no sample clipped.
    assert info["gain_db"] < 0 and abs(second).max() == pytest.approx(10 ** (-0.1 / 20), abs=1e-6)
    assert second == pytest.approx(2 * first, abs=1e-6)


def test_excerpts_within_full_scale_keep_their_level(tmp_path):
    import json

    import soundfile as sf

    @dataclass
    class Quiet(Pair):
        def load(self):
            degraded, clean = super().load()
            return 0.01 * degraded, 0.01 * clean

    (folder,) = save_excerpts(_model(Louder), [Quiet("q")], tmp_path, seconds=1.0)
    assert json.loads((folder / "excerpt.json").read_text())["gain_db"] == 0.0
    clean, _ = sf.read(folder / "clean.wav")
    assert clean.T == pytest.approx(0.01 * Pair("q").load()[1][0, :, 1000:3000].numpy(), abs=1e-6)
