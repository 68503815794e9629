"""evaluate_model: a model's systems on a datamodule split, scored by the runner, resumable and sharded."""

import json
from dataclasses import dataclass

import pytest
import torch

from musicbench.evaluation.model import evaluate_model
from musicbench.evaluation.runner import Evaluator
from musicbench.metrics.sdr import global_sdr, snr
from musicbench.models.base import System


@dataclass
class Track:
    name: str
    seed: int
    sources: tuple = ("a", "b")
    sample_rate: int = 1000

    def load(self):
        targets = torch.randn(2, 2, 1500, generator=torch.Generator().manual_seed(self.seed))
        return targets.sum(0), targets

    def fingerprint(self, hashes):
        return f"seed-{self.seed}"  # the audio is a function of the seed


class Halves(System):
    """Each source estimated as half the mixture."""

    def estimate(self, audio):
        return torch.stack([0.5 * audio, 0.5 * audio], dim=1)


class Samples(Halves):
    """A stochastic stand-in: two seeded samples and their mean."""

    def estimate_systems(self, audio, name):
        base = self.separate(audio[None])[0]
        samples = [base + 0.01 * k for k in range(2)]
        return {"sample_0": samples[0], "sample_1": samples[1], "mean": (samples[0] + samples[1]) / 2}


class Data:
    root = "fake-root"

    def __init__(self, n=3):
        self._tracks = {"test": [Track(f"t{i}", i) for i in range(n)], "valid": []}

    def tracks(self, split):
        return list(self._tracks[split])


def _model(cls=Halves):
    return cls(sample_rate=1000, chunk_seconds=1.0, context_seconds=0.1, crossfade_seconds=0.1)


def _evaluator(**kw):
    return Evaluator({"global_sdr": global_sdr, "snr": snr}, progress=False, **kw)


def test_scores_the_model_and_baseline_and_writes_the_split(tmp_path):
    summary = evaluate_model(_model(), Data(), _evaluator(), tmp_path, model_id="m1", meta={"name": "x"})
    assert summary["split"] == "test" and summary["name"] == "x" and summary["num_tracks"] == 3
    assert set(summary["systems"]) == {"model", "mixture"}
    result = json.loads((tmp_path / "results" / "t0.json").read_text())
    mixture, targets = Track("t0", 0).load()
    expected = global_sdr(targets, 0.5 * mixture.expand_as(targets))
    assert result["scores"]["model"]["a"]["global_sdr"] == pytest.approx(expected[0].item(), abs=1e-5)


def test_the_model_id_decides_which_results_are_reused(tmp_path):
    evaluate_model(_model(), Data(), _evaluator(), tmp_path, model_id="m1")
    path = tmp_path / "results" / "t1.json"
    first = json.loads(path.read_text())
    evaluate_model(_model(), Data(), _evaluator(), tmp_path, model_id="m1")
    assert json.loads(path.read_text()) == first  # same model: reused, not recomputed (same wall time)
    evaluate_model(_model(), Data(), _evaluator(), tmp_path, model_id="m2")
    assert json.loads(path.read_text())["digest"] != first["digest"]


def test_shards_then_merge(tmp_path):
    whole = evaluate_model(_model(), Data(), _evaluator(), tmp_path / "whole", model_id="m")
    for k in range(2):
        part = evaluate_model(
            _model(), Data(), _evaluator(), tmp_path / "sharded", model_id="m", shard=(k, 2)
        )
        assert part["shard"] == f"{k}/2"
    assert not (tmp_path / "sharded" / "summary.json").exists()
    merged = evaluate_model(_model(), Data(), _evaluator(), tmp_path / "sharded", model_id="m", merge=True)
    assert merged["systems"] == whole["systems"] and (tmp_path / "sharded" / "summary.json").is_file()


def test_a_stochastic_model_gets_best_of_k(tmp_path):
    summary = evaluate_model(_model(Samples), Data(1), _evaluator(input_baseline="input"), tmp_path)
    assert set(summary["systems"]) == {"sample_0", "sample_1", "mean", "best_of_k", "input"}


def test_an_empty_split_is_an_error_naming_the_data(tmp_path):
    with pytest.raises(ValueError, match="no tracks in split 'valid' of fake-root"):
        evaluate_model(_model(), Data(), _evaluator(), tmp_path, split="valid")
