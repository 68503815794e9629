"""Types of the config values: structured-config schemas the YAML files extend.

Each schema is a dataclass registered in Hydra's ConfigStore under ``schema/`` (``schema/train``,
``schema/data/musdb``, ``schema/trainer/lightning``...). A YAML file puts its schema first in its
defaults list (``- /schema/data/musdb@_here_``), so Hydra checks every value while it composes, before
any work starts: ``mb-train data.batch_size=abc`` stops with ``Value 'abc' of type 'str' could not be
converted to Integer  full_key: data.batch_size``.

The schemas give types only: every value comes from the YAML files (a field is ``MISSING`` here), and a
schema is open, so keys it does not list (a Lightning flag in a ``debug`` preset, ``+data.pin_memory=true``
on the command line) are accepted untyped, as before. Keys with several possible types (``devices``:
``1``, ``-1``, ``"auto"``, a list) are ``Any``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional  # noqa: UP035 (OmegaConf reads Optional[...] in annotations)

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

# ruff: noqa: UP045 (OmegaConf 2.3 does not read `X | None` annotations)


@dataclass
class RunSchema:
    """Top-level keys shared by ``train.yaml`` and ``eval.yaml``."""

    task_name: str = MISSING
    name: str = MISSING
    seed: int = MISSING
    threads: Optional[int] = MISSING


@dataclass
class TrainSchema(RunSchema):
    """Top-level keys of ``train.yaml`` (``mb-train``)."""

    ckpt_path: Optional[str] = MISSING
    run_id: Any = MISSING
    test: bool = MISSING
    optimized_metric: str = MISSING
    optimized_mode: str = MISSING


@dataclass
class EvalSchema(RunSchema):
    """Top-level keys of ``eval.yaml`` (``mb-eval``)."""

    ckpt_path: str = MISSING
    split: str = MISSING
    data_from_checkpoint: bool = MISSING
    evaluator_from_checkpoint: bool = MISSING
    shard: Optional[str] = MISSING
    merge: bool = MISSING


@dataclass
class LoaderSchema:
    """The loader settings every ``data`` option sets (``musicbench.data.loading.SplitLoaders``)."""

    _target_: str = MISSING
    sample_rate: int = MISSING
    chunk_seconds: float = MISSING
    samples_per_epoch: int = MISSING
    seed: int = MISSING
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    num_workers: int = MISSING
    valid_segment_seconds: Optional[float] = MISSING


@dataclass
class MusdbDataSchema(LoaderSchema):
    """``data=chorales`` and ``data=musdb`` (``MusdbDataModule``)."""

    root: Optional[str] = MISSING
    sources: list[str] = MISSING
    valid_tracks: Any = MISSING
    remix_prob: float = MISSING
    augmentations: Optional[dict[str, Any]] = MISSING


@dataclass
class Mp3PairsDataSchema(LoaderSchema):
    """``data=mp3_pairs`` (``Mp3PairsDataModule``)."""

    stem: str = MISSING
    target_rate: int = MISSING
    sources: list[str] = MISSING
    cache_dir: Optional[str] = MISSING
    prepare_workers: int = MISSING
    progress: bool = MISSING
    bitrates: Optional[list[int]] = MISSING
    on_the_fly_margin_seconds: float = MISSING
    short_tracks: str = MISSING


@dataclass
class TrainerSchema:
    """The Lightning Trainer flags of ``conf/trainer/default.yaml`` (the limits: counts of steps, epochs,
    batches; ``limit_*_batches`` and ``val_check_interval`` are an int (batches) or a float (fraction))."""

    _target_: str = MISSING
    default_root_dir: str = MISSING
    accelerator: str = MISSING
    devices: Any = MISSING
    num_nodes: int = MISSING
    max_epochs: Optional[int] = MISSING
    max_steps: int = MISSING
    max_time: Any = MISSING
    limit_train_batches: Any = MISSING
    limit_val_batches: Any = MISSING
    val_check_interval: Any = MISSING
    check_val_every_n_epoch: Optional[int] = MISSING
    num_sanity_val_steps: Optional[int] = MISSING
    log_every_n_steps: int = MISSING
    gradient_clip_val: Optional[float] = MISSING
    precision: Any = MISSING
    deterministic: Any = MISSING
    enable_model_summary: bool = MISSING


SCHEMAS: dict[str, type] = {
    "schema/train": TrainSchema,
    "schema/eval": EvalSchema,
    "schema/data/musdb": MusdbDataSchema,
    "schema/data/mp3_pairs": Mp3PairsDataSchema,
    "schema/trainer/lightning": TrainerSchema,
}


def _open(schema: type) -> DictConfig:
    """The schema as a config that accepts keys it does not list (untyped)."""
    node = OmegaConf.structured(schema)
    OmegaConf.set_struct(node, False)
    return node


def register_schemas() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent; needed before Hydra composes our configs)."""
    store = ConfigStore.instance()
    for path, schema in SCHEMAS.items():
        group, name = path.rsplit("/", 1)
        store.store(group=group, name=name, node=_open(schema))
