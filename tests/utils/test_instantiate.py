import pytest
from omegaconf import OmegaConf

from musicbench.utils.instantiate import instantiate_dict


def test_instantiates_every_entry_in_order_and_skips_null():
    cfg = OmegaConf.create(
        {
            "b": {"_target_": "builtins.dict", "x": 1},
            "off": None,
            "a": {"_target_": "builtins.list"},
        }
    )
    assert instantiate_dict(cfg, "callbacks") == [{"x": 1}, []]
    assert instantiate_dict(None, "logger") == [] and instantiate_dict(OmegaConf.create({}), "logger") == []


def test_bad_entries_name_the_group_and_key():
    with pytest.raises(ValueError, match=r"callbacks\.broken has no _target_"):
        instantiate_dict(OmegaConf.create({"broken": {"x": 1}}), "callbacks")
    with pytest.raises(TypeError, match="config group 'logger' must be a mapping"):
        instantiate_dict(OmegaConf.create([1, 2]), "logger")
