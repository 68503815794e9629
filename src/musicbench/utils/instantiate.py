"""Instantiation helpers for config groups that hold several objects (callbacks, loggers)."""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig

from musicbench.errors import ConfigError

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
            raise ConfigError(f"{group}.{name} has no _target_: every entry of '{group}' must name a class")
        log.info("instantiating %s.%s <%s>", group, name, conf._target_)
        objects.append(hydra.utils.instantiate(conf))
    return objects
