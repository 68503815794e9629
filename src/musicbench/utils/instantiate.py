"""Instantiation helpers for config groups that hold several objects (callbacks, loggers)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def instantiate_dict(cfg: DictConfig | None, group: str) -> list[Any]:
    """Instantiate every ``_target_`` entry of a mapping (``{name: {_target_: ...}}``) in order; null entries are skipped."""
    if not cfg:
        return []
    if not isinstance(cfg, DictConfig):
        raise TypeError(f"config group '{group}' must be a mapping of name -> object config, got {type(cfg)}")
    objects = []
    for name, conf in cfg.items():
        if conf is None:  # `callbacks.progress_bar=null` switches one entry off
            continue
        if not (isinstance(conf, DictConfig) and "_target_" in conf):
            raise ValueError(f"{group}.{name} has no _target_: every entry of '{group}' must name a class")
        log.info("instantiating %s.%s <%s>", group, name, conf._target_)
        objects.append(hydra.utils.instantiate(conf))
    return objects


def resolve_resume_checkpoint(ckpt_path: str | None, output_dir: str | Path) -> str | None:
    """Which checkpoint a training resumes from.

    ``None`` -> ``<output_dir>/checkpoints/last.ckpt`` if it exists (a requeued job resumes), else a fresh
    start; ``"last"`` -> that file, or an error if missing; anything else -> that path, which must exist.
    """
    last = Path(output_dir) / "checkpoints" / "last.ckpt"
    if ckpt_path is None:
        if last.is_file():
            log.info("resuming from %s", last)
            return str(last)
        return None
    if ckpt_path == "last":
        if not last.is_file():
            raise FileNotFoundError(
                f"ckpt_path=last but {last} does not exist: nothing to resume in this run "
                "folder (same overrides as the original run?); drop ckpt_path to start fresh"
            )
        return str(last)
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    return str(ckpt_path)
