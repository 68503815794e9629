"""Every option of every config group composes, and instantiates."""

from pathlib import Path

import hydra
import pytest
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from musicbench.utils.config import CONFIG_DIR, _signature
from musicbench.utils.instantiate import instantiate_dict

GROUPS = [
    "data",
    "model",
    "evaluator",
    "trainer",
    "callbacks",
    "logger",
    "paths",
    "experiment",
    "hparams_search",
    "debug",
]
# Groups inside a group's option, and the option whose defaults list selects them.
NESTED = {"data/source": "data=mp3_pairs", "debug/net": "debug=tiny"}
OPTIONS = [(g, p.stem) for g in [*GROUPS, *NESTED] for p in sorted((CONFIG_DIR / g).glob("*.yaml"))]
# Options that need hardware this machine may lack are instantiated with CPU settings here; a gpu-marked
# test instantiates them as they are.
CPU_SETTINGS = ["trainer.accelerator=cpu", "trainer.devices=1", "trainer.precision=32-true"]


def _compose(name, overrides, tmp_path, chorales_root):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(
            name,
            return_hydra_config=True,
            overrides=[
                *overrides,
                f"paths.output_dir={tmp_path}",
                # Stores shared by runs (MLflow's SQLite file, created when its logger is built) go here too.
                f"paths.output_root={tmp_path}",
                f"paths.chorales_root={chorales_root}",
                f"paths.musdb_root={chorales_root}",
            ],
        )


def test_every_group_has_options():
    for g in [*GROUPS, *NESTED]:
        assert list((CONFIG_DIR / g).glob("*.yaml")), g
    subfolders = {p.relative_to(CONFIG_DIR).as_posix() for g in GROUPS for p in (CONFIG_DIR / g).glob("*/")}
    assert subfolders == set(NESTED)


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_instantiates(group, option, tmp_path, tiny_chorales_root):
    overrides = [NESTED[group], f"{group}={option}"] if group in NESTED else [f"{group}={option}"]
    if group == "debug/net":  # chosen by train.yaml from debug and model (tiny_<model>), not by name
        overrides = [NESTED[group], f"model={option.removeprefix('tiny_')}"]
    if group in ("trainer",) and option in ("gpu", "ddp"):
        overrides += CPU_SETTINGS
    cfg = _compose("train", overrides, tmp_path, tiny_chorales_root)
    if group == "data" and option == "musdb":
        # The musdb option reads the MUSDB layout; the chorale set has it, with other sources.
        cfg.data.sources = ["soprano", "alto", "tenor", "bass"]
    dm = hydra.utils.instantiate(cfg.data)
    assert dm.sources == list(cfg.data.sources)
    model = hydra.utils.instantiate(cfg.model)
    assert isinstance(model, pl.LightningModule)
    assert hydra.utils.instantiate(cfg.evaluator).metrics
    callbacks = instantiate_dict(cfg.get("callbacks"), "callbacks")
    loggers = instantiate_dict(cfg.get("logger"), "logger")
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    assert isinstance(trainer, pl.Trainer)
    if group == "debug/net":
        assert cfg.hydra.runtime.choices["debug/net@model.net"] == option
    if group == "hparams_search":
        assert cfg.hydra.mode.name == "MULTIRUN" and cfg.hydra.sweeper.params


def test_eval_config_composes(tmp_path, tiny_chorales_root):
    chosen = [
        "data=chorales",
        "evaluator=separation",
        "data_from_checkpoint=false",
        "evaluator_from_checkpoint=false",
    ]
    cfg = _compose("eval", ["ckpt_path=x.ckpt", *chosen], tmp_path, tiny_chorales_root)
    assert cfg.split == "test" and hydra.utils.instantiate(cfg.evaluator).metrics
    # The checkpoint is part of an evaluation's run folder (not of a training's: it resumes there).
    other = _compose("eval", ["ckpt_path=y.ckpt", *chosen], tmp_path, tiny_chorales_root)
    assert Path(cfg.hydra.run.dir).name != Path(other.hydra.run.dir).name
    trains = [_compose("train", [f"ckpt_path={c}"], tmp_path, tiny_chorales_root) for c in ("x", "y")]
    assert trains[0].hydra.run.dir == trains[1].hydra.run.dir
    # Nothing but the checkpoint by default: the switches take data and evaluator from it.
    bare = _compose("eval", ["ckpt_path=x.ckpt"], tmp_path, tiny_chorales_root)
    assert "data" not in bare and "evaluator" not in bare
    assert bare.data_from_checkpoint and bare.evaluator_from_checkpoint
    # The hash is that of the override lines with the checkpoint in the place Hydra's sort gives it.
    lines = sorted(["ckpt_path=x.ckpt", bare.hydra.job.override_dirname])
    assert Path(bare.hydra.run.dir).name == _signature(",".join(lines))


@pytest.mark.gpu
@pytest.mark.parametrize("option", ["gpu", "ddp"])
def test_gpu_trainers_instantiate_as_configured(option, tmp_path, tiny_chorales_root):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cfg = _compose("train", [f"trainer={option}"], tmp_path, tiny_chorales_root)
    assert isinstance(hydra.utils.instantiate(cfg.trainer), pl.Trainer)


def test_run_folder_is_deterministic_and_distinct(tmp_path, tiny_chorales_root):
    def run_dir(*overrides):
        cfg = _compose("train", list(overrides), tmp_path, tiny_chorales_root)
        return Path(cfg.hydra.run.dir)

    # The compose API leaves override_dirname empty; check the resolver on Hydra's override strings.
    assert _signature("model.optimizer.lr=0.1") == _signature("model.optimizer.lr=0.1")
    assert _signature("model.optimizer.lr=0.1") != _signature("model.optimizer.lr=0.2")
    assert run_dir().parts[-3:-1] == ("train", "default")


@pytest.mark.parametrize(
    "preset,filename,mode",
    [
        ("chorales_unet", "epoch{epoch:03d}-sdr{val/sdr:.2f}", "max"),
        ("restore_gan_mp3_32k", "epoch{epoch:03d}-lsd{val/lsd:.2f}", "min"),
    ],
)
def test_checkpointing_follows_the_optimized_metric(preset, filename, mode, tmp_path, tiny_chorales_root):
    cfg = _compose("train", [f"experiment={preset}"], tmp_path, tiny_chorales_root)
    checkpoint = cfg.callbacks.model_checkpoint
    assert checkpoint.monitor == cfg.optimized_metric and checkpoint.mode == mode == cfg.optimized_mode
    assert checkpoint.filename == filename
