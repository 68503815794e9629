import functools
import json

import pytest
import torch

from musicbench.audio.oracles import ideal_ratio_mask
from musicbench.errors import ConfigError
from musicbench.evaluation.runner import Evaluator
from musicbench.evaluation.systems import ORACLE_IRM, is_model_system, oracle_name
from musicbench.metrics.sdr import global_sdr, snr

from .test_runner import FakeTrack, _noisy_estimate


def test_oracle_names():
    assert oracle_name("irm") == ORACLE_IRM == "oracle_irm"
    assert is_model_system(ORACLE_IRM)  # not free for the input baseline


def test_evaluator_scores_the_oracle_from_the_references(tmp_path):
    irm = functools.partial(ideal_ratio_mask, n_fft=256, hop_length=64)
    evaluator = Evaluator({"global_sdr": global_sdr, "snr": snr}, progress=False, oracles={"irm": irm})
    tracks = [FakeTrack("t1", 1), FakeTrack("t2", 2)]
    summary = evaluator.evaluate(tracks, _noisy_estimate(0.1), tmp_path, digest="d")
    assert set(summary["systems"]) == {"model", "oracle_irm", "mixture"}
    for t in tracks:
        res = json.loads((tmp_path / "results" / f"{t.name}.json").read_text())
        mixture, targets = t.load()
        expected = global_sdr(targets, irm(mixture, targets))
        for i, source in enumerate(t.sources):
            scores = res["scores"]
            assert scores["oracle_irm"][source]["global_sdr"] == pytest.approx(float(expected[i]))
            # Two white-noise sources: the oracle still beats the mixture by several dB.
            assert scores["oracle_irm"][source]["global_sdr"] > scores["mixture"][source]["global_sdr"] + 3


def test_no_oracles_by_default_and_oracle_names_are_reserved(tmp_path):
    summary = Evaluator({"snr": snr}, progress=False).evaluate(
        [FakeTrack("t1", 1)], _noisy_estimate(0.1), tmp_path, digest="d"
    )
    assert set(summary["systems"]) == {"model", "mixture"}
    with pytest.raises(ConfigError, match="is not free"):
        Evaluator({"snr": snr}, input_baseline="oracle_irm")


def test_oracle_is_computed_on_the_track_as_loaded(tmp_path):
    seen = []

    def oracle(mixture, references):
        seen.append((mixture.shape, references.shape))
        return references.clone()  # a perfect "oracle"

    Evaluator({"snr": snr}, progress=False, oracles={"copy": oracle}).evaluate(
        [FakeTrack("t1", 1)], _noisy_estimate(0.1), tmp_path, digest="d"
    )
    res = json.loads((tmp_path / "results" / "t1.json").read_text())
    assert seen == [(torch.Size([2, 4000]), torch.Size([2, 2, 4000]))]
    assert res["scores"]["oracle_copy"]["a"]["snr"] == float("inf")
