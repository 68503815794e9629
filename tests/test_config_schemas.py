"""Config values are typed (conf/schemas.py): a wrong type stops composition and names the key."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from musicbench.train import apply_step_budget
from musicbench.utils.config import CONFIG_DIR


def _compose(name, *overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=list(overrides))


@pytest.mark.parametrize(
    "config,override",
    [
        ("train", "data.batch_size=abc"),
        ("train", "data.num_workers=two"),
        ("train", "data.chunk_seconds=long"),
        ("train", "data.samples_per_epoch=1.5"),
        ("train", "data=mp3_pairs data.prepare_workers=x"),
        ("train", "trainer.max_steps=many"),
        ("train", "trainer.max_epochs=1.5"),
        ("train", "seed=abc"),
        ("train", "threads=four"),
        ("train", "test=maybe"),
        ("eval", "merge=maybe"),
    ],
)
def test_wrong_type_names_the_key(config, override):
    *others, last = override.split()
    with pytest.raises(ConfigCompositionException) as info:
        _compose(config, *others, last, *(["ckpt_path=x"] if config == "eval" else []))
    key = last.split("=")[0]
    assert f"full_key: {key}" in str(info.value.__cause__)


def test_values_are_converted_and_unknown_keys_still_accepted():
    cfg = _compose("train", "data.chunk_seconds=2", "+data.pin_memory=true", "+trainer.profiler=simple")
    assert cfg.data.chunk_seconds == 2.0 and isinstance(cfg.data.chunk_seconds, float)
    assert cfg.data.pin_memory is True and cfg.trainer.profiler == "simple"
    # Flags of the debug presets that the schema does not list merge as before.
    assert _compose("train", "debug=fdr").trainer.fast_dev_run is True
    assert _compose("train", "trainer=ddp", "debug=default").trainer.detect_anomaly is True


def test_trainer_limits_are_exposed():
    trainer = _compose("train").trainer
    for key in ("max_steps", "max_epochs", "max_time", "limit_train_batches", "limit_val_batches"):
        assert key in trainer
    for key in ("val_check_interval", "num_sanity_val_steps"):
        assert key in trainer
    assert _compose("train", "trainer.max_steps=5").trainer.max_steps == 5  # no `+` needed


@pytest.mark.parametrize(
    "settings,epochs",
    [
        ({"max_steps": 5, "max_epochs": 2}, -1),  # a step budget lifts the epoch limit
        ({"max_steps": -1, "max_epochs": 2}, 2),  # no step budget: the epochs are the budget
        ({"max_steps": 5, "max_epochs": -1}, -1),
    ],
)
def test_step_budget(settings, epochs):
    trainer = OmegaConf.create(settings)
    apply_step_budget(trainer)
    assert trainer.max_epochs == epochs and trainer.max_steps == settings["max_steps"]


@pytest.mark.parametrize(
    "settings,message",
    [
        (dict(batch_size="abc"), "data.batch_size must be positive (an integer), got 'abc'"),
        (dict(chunk_seconds="3"), "data.chunk_seconds must be positive (a number), got '3'"),
        (dict(num_workers=1.5), "data.num_workers must be an integer, got 1.5"),
        (dict(valid_segment_seconds="x"), "data.valid_segment_seconds must be a number or null"),
    ],
)
def test_loader_settings_that_skip_the_schema_name_the_key(settings, message, tiny_chorales_root):
    """A data config that was not composed (a checkpoint's, a Python caller's) is checked by the loader."""
    from musicbench.data.musdb import MusdbDataModule
    from musicbench.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        MusdbDataModule(tiny_chorales_root, ["soprano", "alto", "tenor", "bass"], **settings)
    assert message in str(info.value)
