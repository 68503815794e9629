"""``mb-eval ckpt_path=...``: rebuild a model from its checkpoint, separate a split and score it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from musicbench.callbacks import CONFIG_KEY
from musicbench.evaluation.model import evaluate_model
from musicbench.evaluation.report import print_summary
from musicbench.evaluation.runner import parse_shard
from musicbench.utils.config import CONFIG_DIR, set_threads
from musicbench.utils.files import sha256_file

log = logging.getLogger(__name__)


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder whose best checkpoint (else ``last.ckpt``) is returned."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        ckpt_dir = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        best = sorted(p for p in ckpt_dir.glob("*.ckpt") if p.name != "last.ckpt")
        if best:
            return max(best, key=lambda p: p.stat().st_mtime)
        if (ckpt_dir / "last.ckpt").is_file():
            return ckpt_dir / "last.ckpt"
        raise FileNotFoundError(
            f"no .ckpt file in {ckpt_dir}: pass ckpt_path=<file.ckpt> or a training run folder"
        )
    raise FileNotFoundError(f"ckpt_path={path}: no such file or run folder")


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], DictConfig]:
    """Load a checkpoint (on CPU) and the run config stored in it."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if CONFIG_KEY not in state:
        raise ValueError(
            f"{path} holds no '{CONFIG_KEY}': not a checkpoint written by mb-train "
            "(it stores the run config so the model can be rebuilt)"
        )
    return state, OmegaConf.create(state[CONFIG_KEY])


def _task_overrides() -> list[str]:
    """The command line's overrides (none outside ``@hydra.main``, e.g. the compose API in tests)."""
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def _overridden(group: str) -> bool:
    """Whether ``group=...`` or ``group.key=...`` was given on the command line."""
    return any(o.lstrip("+~").startswith((f"{group}=", f"{group}.")) for o in _task_overrides())


def _data_overridden() -> bool:
    return _overridden("data")


def _evaluator_config(cfg: DictConfig, stored: DictConfig) -> DictConfig:
    """The training run's evaluator with the command line's ``evaluator.key=value`` overrides applied, or
    ``cfg.evaluator`` when ``evaluator=...`` chooses another one (or the checkpoint stores none)."""
    overrides = _task_overrides()
    if "evaluator" not in stored or any(o.lstrip("+~").startswith("evaluator=") for o in overrides):
        return cfg.evaluator
    keys = [o.lstrip("+")[len("evaluator.") :] for o in overrides if o.lstrip("+").startswith("evaluator.")]
    base = OmegaConf.create(OmegaConf.to_container(stored.evaluator, resolve=True))
    return OmegaConf.merge(base, OmegaConf.from_dotlist(keys))


def evaluate(
    cfg: DictConfig, data_from_checkpoint: bool | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split``; returns ``(summary, objects)``."""
    pl.seed_everything(cfg.seed, workers=True)
    set_threads(cfg.get("threads"))
    ckpt = find_checkpoint(cfg.ckpt_path)
    state, stored = load_checkpoint(ckpt)
    model = hydra.utils.instantiate(stored.model)
    model.load_state_dict(state["state_dict"])
    if data_from_checkpoint is None:
        data_from_checkpoint = not _data_overridden()
    data_cfg = stored.data if data_from_checkpoint else cfg.data
    datamodule = hydra.utils.instantiate(data_cfg)
    # The evaluator of the training run (e.g. restoration metrics with the codec's cut-off) unless the
    # command line chooses another.
    evaluator = hydra.utils.instantiate(_evaluator_config(cfg, stored))
    shard = parse_shard(cfg.evaluation.shard)
    merge = bool(cfg.evaluation.merge)
    # Every datamodule names its dataset root (MP3 pairs: the root of their clean source).
    data_root = str(datamodule.root)
    log.info("evaluating %s on %s/%s%s", ckpt, data_root, cfg.split, f" (shard {shard})" if shard else "")
    summary = evaluate_model(
        model,
        datamodule,
        evaluator,
        cfg.paths.output_dir,
        split=cfg.split,
        model_id=sha256_file(ckpt),
        meta={
            "model": stored.model._target_,
            "data": data_root,
            "checkpoint": str(ckpt),
            "name": stored.get("name", ""),
        },
        shard=shard,
        merge=merge,
    )
    print_summary(summary)
    if shard:
        log.info(
            "shard %s done; when all shards are: mb-eval ... evaluation.merge=true", cfg.evaluation.shard
        )
    return summary, {"model": model, "datamodule": datamodule, "checkpoint": ckpt}


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    """Entry point of ``mb-eval``."""
    evaluate(cfg)


if __name__ == "__main__":
    main()
