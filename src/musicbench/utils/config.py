"""Hydra/OmegaConf plumbing: resolvers, the config directory, instantiation helpers."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from musicbench.conf.schemas import register_schemas
from musicbench.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"


def _signature(override_dirname: str, *first: str) -> str:
    """Short hash of Hydra's override string: the run folder name (``"base"`` when there is none).

    ``first``: ``key=value`` lines hashed before the overrides, for a key the exclusion list leaves out
    but a task's folder depends on (``mb-eval``'s ``ckpt_path``). Hydra sorts the override lines and
    every ``eval.yaml`` key sorts after ``ckpt_path``, so the string is the one Hydra would build.
    """
    lines = [*first, override_dirname] if override_dirname else list(first)
    if not lines:
        return "base"
    return hashlib.sha1(",".join(lines).encode()).hexdigest()[:10]


def register_resolvers() -> None:
    """Register ``mb_sig``, ``mb_abspath`` and ``mb_basename`` (idempotent; needed before Hydra composes
    our configs)."""
    resolvers = {
        "mb_sig": _signature,
        "mb_abspath": lambda p: str(Path(p).expanduser().resolve()),
        # "val/sdr" -> "sdr": a metric's name in checkpoint file names.
        "mb_basename": lambda p: str(p).rsplit("/", 1)[-1],
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


def set_threads(threads: int | None) -> None:
    """Fix torch's intra-op CPU thread count (``None``: leave torch's default, one per core).

    Float reductions are split per thread, so bit-identical results need the same count on every machine.
    """
    if threads is None:
        return
    if not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads={threads!r}: expected a positive integer or null (torch's default)")
    import torch

    torch.set_num_threads(threads)


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python containers (for checkpoints, JSON, digests)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


register_resolvers()
register_schemas()
