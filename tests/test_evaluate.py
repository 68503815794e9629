"""mb-eval's choice of data and evaluator configs: the checkpoint's, adjusted, or the command line's."""

import pytest
from omegaconf import OmegaConf

from musicbench.evaluate import component_config

STORED = OmegaConf.create(
    {
        "data": {"_target_": "Data", "root": "/stored", "sample_rate": 8000},
        "evaluator": {"_target_": "Evaluator", "progress": True, "input_baseline": "input"},
    }
)


def _cfg(**given):
    return OmegaConf.create({"data_from_checkpoint": True, "evaluator_from_checkpoint": True, **given})


def test_the_checkpoints_config_by_default():
    assert component_config(_cfg(), STORED, "data") == STORED.data
    assert component_config(_cfg(), STORED, "evaluator") == STORED.evaluator


def test_single_keys_adjust_the_checkpoints_config():
    cfg = _cfg(evaluator={"progress": False}, rate=16000, data={"sample_rate": "${rate}"})
    assert component_config(cfg, STORED, "evaluator") == {**STORED.evaluator, "progress": False}
    assert component_config(cfg, STORED, "data").sample_rate == 16000  # resolved where it was given


def test_the_chosen_config_needs_the_switch_off():
    chosen = {"_target_": "Other", "root": "/here"}
    with pytest.raises(ValueError, match="add data_from_checkpoint=false"):
        component_config(_cfg(data=chosen), STORED, "data")
    cfg = _cfg(data=chosen, data_from_checkpoint=False)
    assert component_config(cfg, STORED, "data") == chosen
    with pytest.raises(ValueError, match=r"evaluator_from_checkpoint=false needs evaluator=<option>"):
        component_config(_cfg(evaluator_from_checkpoint=False), STORED, "evaluator")


def test_a_checkpoint_without_the_config_says_what_to_pass():
    with pytest.raises(ValueError, match="stores no evaluator config: pass evaluator=... evaluator_from"):
        component_config(_cfg(), OmegaConf.create({"data": {}}), "evaluator")
