"""Hydra/OmegaConf plumbing: resolvers, the config directory, instantiation helpers."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"


def _signature(override_dirname: str) -> str:
    """Short hash of Hydra's override string: the run folder name (``"base"`` when there is none)."""
    if not override_dirname:
        return "base"
    return hashlib.sha1(override_dirname.encode()).hexdigest()[:10]


def register_resolvers() -> None:
    """Register ``mb_sig`` and ``mb_abspath`` (idempotent; needed before Hydra composes our configs)."""
    if not OmegaConf.has_resolver("mb_sig"):
        OmegaConf.register_new_resolver("mb_sig", _signature)
    if not OmegaConf.has_resolver("mb_abspath"):
        OmegaConf.register_new_resolver("mb_abspath", lambda p: str(Path(p).expanduser().resolve()))


def set_threads(threads: int | None) -> None:
    """Fix torch's intra-op CPU thread count (``None``: leave torch's default, one per core).

    Float reductions are split per thread, so bit-identical results need the same count on every machine.
    """
    if threads is None:
        return
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads={threads!r}: expected a positive integer or null (torch's default)")
    import torch

    torch.set_num_threads(threads)


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python containers (for checkpoints, JSON, digests)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


register_resolvers()
