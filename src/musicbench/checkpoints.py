"""Checkpoints: the run config stored inside each one, which one a training resumes from, which one an
evaluation loads, and loading it.

``mb-train`` stores the resolved run config in every checkpoint (:class:`ConfigInCheckpoint`), so a
checkpoint file alone is enough for ``mb-eval`` to rebuild the model, its data and its evaluator.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from musicbench.errors import CheckpointError, CheckpointNotFoundError

log = logging.getLogger(__name__)

CONFIG_KEY = "musicbench_config"
LAST = "last.ckpt"
# Classes that moved: configs stored in older checkpoints name them by their old path.
MOVED_TARGETS = {
    "musicbench.models.adversarial.WassersteinLoss": "musicbench.models.losses.WassersteinLoss",
    "musicbench.models.adversarial.HingeLoss": "musicbench.models.losses.HingeLoss",
    "musicbench.models.adversarial.LeastSquaresLoss": "musicbench.models.losses.LeastSquaresLoss",
    "musicbench.evaluation.runner.SeparationEvaluator": "musicbench.evaluation.runner.Evaluator",
}
EVALUATOR = "musicbench.evaluation.runner.Evaluator"


class ConfigInCheckpoint(pl.Callback):
    """Stores the resolved run config inside every checkpoint (``checkpoint["musicbench_config"]``).

    ``mb-train`` adds it to the configured callbacks, so every checkpoint it writes can be evaluated
    without its run folder.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        checkpoint[CONFIG_KEY] = self.config


def resume_checkpoint(ckpt_path: str | None, output_dir: str | Path) -> str | None:
    """Which checkpoint a training resumes from.

    ``None`` -> ``<output_dir>/checkpoints/last.ckpt`` if it exists (a requeued job resumes), else a fresh
    start; ``"last"`` -> that file, or an error if missing; anything else -> that path, which must exist.
    """
    last = Path(output_dir) / "checkpoints" / LAST
    if ckpt_path is None:
        if last.is_file():
            log.info("resuming from %s", last)
            return str(last)
        return None
    if ckpt_path == "last":
        if not last.is_file():
            raise CheckpointNotFoundError(
                f"ckpt_path=last but {last} does not exist: nothing to resume in this run "
                "folder (same overrides as the original run?); drop ckpt_path to start fresh"
            )
        return str(last)
    if not Path(ckpt_path).is_file():
        raise CheckpointNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    return str(ckpt_path)


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder whose best checkpoint (the newest that is not ``last.ckpt``;
    else ``last.ckpt``) is returned."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        ckpt_dir = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        best = sorted(p for p in ckpt_dir.glob("*.ckpt") if p.name != LAST)
        if best:
            return max(best, key=lambda p: p.stat().st_mtime)
        if (ckpt_dir / LAST).is_file():
            return ckpt_dir / LAST
        raise CheckpointNotFoundError(
            f"no .ckpt file in {ckpt_dir}: pass ckpt_path=<file.ckpt> or a training run folder"
        )
    raise CheckpointNotFoundError(f"ckpt_path={path}: no such file or run folder")


def best_checkpoint(trainer: pl.Trainer) -> Path | None:
    """The best checkpoint the trainer's checkpoint callback has written, or ``None`` (no callback, no
    monitored metric yet, or a file that is gone)."""
    path = getattr(trainer.checkpoint_callback, "best_model_path", "") or ""
    return Path(path) if path and Path(path).is_file() else None


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], DictConfig]:
    """Load a checkpoint on the CPU: ``(state, run config)``; the state's ``state_dict`` holds the weights.

    Raises :class:`~musicbench.errors.CheckpointError` for a file that is not a readable checkpoint
    (truncated, corrupt) or holds no stored config (not written by ``mb-train``).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {exc}. The file is truncated or corrupt (an interrupted "
            "copy or a full disk?): use another checkpoint of the run, or delete it and train again"
        ) from exc
    if not isinstance(state, dict) or CONFIG_KEY not in state:
        raise CheckpointError(
            f"{path} holds no '{CONFIG_KEY}': not a checkpoint written by mb-train "
            "(it stores the run config so the model can be rebuilt)"
        )
    return state, OmegaConf.create(upgrade_config(state[CONFIG_KEY]))


def upgrade_config(node: Any) -> Any:
    """A stored run config with the ``_target_`` paths of moved classes replaced (``MOVED_TARGETS``) and
    an evaluator's ``baselines: [name]`` written as ``input_baseline: name``; other values as they are."""
    if isinstance(node, list):
        return [upgrade_config(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: upgrade_config(v) for k, v in node.items()}
    if "_target_" in out:
        out["_target_"] = MOVED_TARGETS.get(out["_target_"], out["_target_"])
    if out.get("_target_") == EVALUATOR and "baselines" in out:
        baselines = list(out.pop("baselines") or [])
        if len(baselines) > 1:
            raise CheckpointError(
                f"stored evaluator has baselines {baselines}: one input baseline is scored now; "
                "evaluate with evaluator=... evaluator_from_checkpoint=false"
            )
        out["input_baseline"] = baselines[0] if baselines else None
    return out
