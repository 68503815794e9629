"""``mb-eval ckpt_path=...``: rebuild a model from its checkpoint, evaluate it on a split and score it."""

from __future__ import annotations

import copy
import logging
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from musicbench.checkpoints import find_checkpoint, load_checkpoint
from musicbench.data.identity import naming_root_key
from musicbench.errors import ConfigError, reported_errors
from musicbench.evaluation.model import run_test
from musicbench.evaluation.runner import parse_shard
from musicbench.utils.config import CONFIG_DIR, link_data_paths, set_threads
from musicbench.utils.hashcache import file_hashes, set_cache_dir

log = logging.getLogger(__name__)


def component_config(cfg: DictConfig, stored: DictConfig, group: str) -> DictConfig:
    """The ``data`` or ``evaluator`` config of an evaluation (``group``), as ``<group>_from_checkpoint`` says.

    ``true``: the training run's (``stored``, from the checkpoint) with the keys of ``cfg.<group>`` set on
    top (``+evaluator.progress=false`` on the command line); ``false``: ``cfg.<group>`` as composed
    (``data=musdb``, ``evaluator=global_sdr``). Raises :class:`~musicbench.errors.ConfigError` saying which switch is missing when
    the two disagree.
    """
    given = cfg.get(group)
    switch = f"{group}_from_checkpoint"
    if cfg[switch]:
        if given is not None and "_target_" in given:
            raise ConfigError(
                f"{group}=... chooses a {group} config, but {switch}=true takes the checkpoint's: add "
                f"{switch}=false to use the chosen one (or set single keys with +{group}.key=value)"
            )
        if group not in stored:
            raise ConfigError(f"the checkpoint stores no {group} config: pass {group}=... {switch}=false")
        keys = OmegaConf.to_container(given, resolve=True) if given is not None else {}
        return OmegaConf.merge(stored[group], keys)
    if given is None or "_target_" not in given:
        raise ConfigError(
            f"{switch}=false needs {group}=<option> on the command line (options: conf/{group}/)"
        )
    return given


def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split``; returns ``(summary, objects)``."""
    pl.seed_everything(cfg.seed, workers=True)
    set_threads(cfg.get("threads"))
    set_cache_dir(cfg.paths.get("cache_dir"))
    ckpt = find_checkpoint(cfg.ckpt_path)
    state, stored = load_checkpoint(ckpt)
    stored = OmegaConf.create(link_data_paths(OmegaConf.to_container(stored, resolve=False)))
    model = hydra.utils.instantiate(stored.model)
    model.load_state_dict(state["state_dict"])
    run_cfg = copy.deepcopy(cfg)
    with open_dict(run_cfg):
        # Dataset roots the command line and the environment leave unset are the training run's
        # (conf/paths/default.yaml); the stored data config refers to them as ${paths.<key>}.
        run_cfg.checkpoint_paths = stored.get("paths") or {}
        # The evaluator's ${data.*} interpolations then refer to the data that is evaluated.
        run_cfg.data = component_config(run_cfg, stored, "data")
        run_cfg.evaluator = component_config(run_cfg, stored, "evaluator")
    datamodule = hydra.utils.instantiate(run_cfg.data)
    with naming_root_key(run_cfg):
        datamodule.check_files(file_hashes())  # a file that differs from its manifest stops here
        summary = run_test(
            model,
            datamodule,
            hydra.utils.instantiate(run_cfg.evaluator),
            cfg.paths.output_dir,
            checkpoint=ckpt,
            model_target=stored.model._target_,
            run_name=stored.get("name", ""),
            split=cfg.split,
            shard=parse_shard(cfg.shard),
            merge=bool(cfg.merge),
        )
    return summary, {"model": model, "datamodule": datamodule, "checkpoint": ckpt}


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    """Entry point of ``mb-eval``."""
    with reported_errors():  # an expected failure: one `error:` line, exit status 1
        evaluate(cfg)


if __name__ == "__main__":
    main()
