"""Checkpoints: what each one holds besides Lightning's state (the run config, the RNG states), how they
are written (atomically, verified), which one a training resumes from, which one an evaluation loads.

``mb-train`` stores the resolved run config in every checkpoint (:class:`ConfigInCheckpoint`), so a
checkpoint file alone is enough for ``mb-eval`` to rebuild the model, its data and its evaluator.
"""

from __future__ import annotations

import logging
import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from musicbench.errors import CheckpointError, CheckpointNotFoundError, ConfigError, first_few

log = logging.getLogger(__name__)

CONFIG_KEY = "musicbench_config"
RNG_KEY = "musicbench_rng"
# In a checkpoint written when a signal stopped the training (musicbench.preemption): {"epoch": e,
# "batches_done": k, "epoch_end": bool}, the batch of the epoch it stopped after (the last one: epoch_end).
PREEMPTED_KEY = "musicbench_preempted"
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


def rng_states() -> dict[str, Any]:
    """The global RNG states of this process: torch (CPU and, once initialised, CUDA), numpy, python; in
    types that ``torch.load(weights_only=True)`` reads (tensors, lists, numbers), as Lightning loads."""
    cuda = (
        torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    )
    name, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": [name, keys.tolist(), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_rng_states(states: Mapping[str, Any]) -> None:
    """Restore states from :func:`rng_states` (CUDA only where there are as many devices)."""
    torch.set_rng_state(states["torch"])
    cuda = states.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))


class RNGStateInCheckpoint(pl.Callback):
    """Stores the global RNG states in every checkpoint (``checkpoint["musicbench_rng"]``) and restores them
    when training resumes, so a resumed run draws what the uninterrupted run drew (dropout masks, noise).

    The states are taken when the checkpoint is written: at the end of an epoch with the configured
    ``ModelCheckpoint``. The uninterrupted run then starts the next epoch with a new training DataLoader
    iterator, which draws its base seed from torch's global RNG; a resumed run creates that iterator in
    ``fit`` after ``on_fit_start``, so the states are restored there and the same draw follows. A
    DataLoader with persistent workers keeps its iterator between epochs (no draw), so for one the
    states are restored again in ``on_train_start``, after the resumed run's iterator exists.
    A checkpoint written when a signal stopped the training mid-epoch (``PREEMPTED_KEY``) holds the states
    after a batch; the resumed run creates its DataLoader iterator (a draw) before that batch's successor,
    which the uninterrupted run did not, so the states are restored at the first ``on_train_batch_start``
    (after an epoch's last batch, as for an end-of-epoch checkpoint). Checkpoints written
    mid-epoch by ``every_n_train_steps`` resume with Lightning's own mid-epoch logic and are not covered.
    Under DDP the states of rank 0 are stored.
    """

    def __init__(self) -> None:
        self._loaded: Mapping[str, Any] | None = None
        self._at_next_batch = False

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        checkpoint[RNG_KEY] = rng_states()

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        self._loaded = checkpoint.get(RNG_KEY)
        stopped = checkpoint.get(PREEMPTED_KEY)
        self._at_next_batch = stopped is not None and not stopped.get("epoch_end")
        if self._loaded is None:
            log.warning(
                "the checkpoint holds no RNG states: the resumed run will not match an uninterrupted one"
            )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._loaded is not None:
            set_rng_states(self._loaded)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._loaded is not None and _keeps_workers(trainer.train_dataloader):
            set_rng_states(self._loaded)
        if not self._at_next_batch:
            self._loaded = None

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._at_next_batch and self._loaded is not None:
            set_rng_states(self._loaded)
        self._at_next_batch = False
        self._loaded = None


def _keeps_workers(loaders: Any) -> bool:
    """Whether any of the training DataLoaders (one, or a list/dict of them) keeps its worker processes."""
    if isinstance(loaders, Mapping):
        loaders = list(loaders.values())
    if not isinstance(loaders, (list, tuple)):
        loaders = [loaders]
    return any(
        getattr(dl, "persistent_workers", False) and getattr(dl, "num_workers", 0) > 0 for dl in loaders
    )


def resume_checkpoint(ckpt_path: str | None, output_dir: str | Path) -> str | None:
    """Which checkpoint a training resumes from.

    ``None`` -> ``<output_dir>/checkpoints/last.ckpt`` if it exists (a requeued job resumes), else a fresh
    start; ``"last"`` -> that file, or an error if missing; anything else -> that path, which must exist.
    Every candidate is checked (:func:`checkpoint_problem`): an unreadable ``last.ckpt`` falls back, with a
    warning, to the newest readable checkpoint of the same folder; an unreadable chosen file, or no
    readable fallback, raises :class:`CheckpointError` naming the file and what to do. An unreadable
    ``last.ckpt`` that is replaced by a fallback is renamed ``last.ckpt.unreadable``.
    """
    ckpt_dir = Path(output_dir) / "checkpoints"
    last = ckpt_dir / LAST
    if ckpt_path is None and not last.is_file():
        return None
    if ckpt_path == "last" and not last.is_file():
        raise CheckpointNotFoundError(
            f"ckpt_path=last but {last} does not exist: nothing to resume in this run "
            "folder (same overrides as the original run?); drop ckpt_path to start fresh"
        )
    if ckpt_path in (None, "last"):
        problem = checkpoint_problem(last)
        if problem is None:
            log.info("resuming from %s", last)
            return str(last)
        for other in sorted(_checkpoint_files(ckpt_dir), key=lambda p: p.stat().st_mtime, reverse=True):
            if other.name != LAST and checkpoint_problem(other) is None:
                # Moved aside (kept for inspection), so the resumed run writes a new last.ckpt.
                aside = last.with_name(LAST + ".unreadable")
                last.replace(aside)
                log.warning(
                    "%s cannot be read (%s; moved to %s): resuming from %s instead, the newest readable "
                    "checkpoint in that folder (the training after it is done again)",
                    last,
                    problem,
                    aside.name,
                    other,
                )
                return str(other)
        raise CheckpointError(
            f"{last} cannot be read ({problem}) and no other checkpoint in {ckpt_dir} can: delete it to "
            "start this run afresh, or pass ckpt_path=<a readable .ckpt>"
        )
    if not Path(ckpt_path).is_file():
        raise CheckpointNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    problem = checkpoint_problem(ckpt_path)
    if problem is not None:
        raise CheckpointError(
            f"ckpt_path={ckpt_path} cannot be read ({problem}): pass another checkpoint, or drop ckpt_path "
            "to start fresh"
        )
    return str(ckpt_path)


# What a resumed run must share with the run that wrote its checkpoint: the network and how it is trained
# (model), the data it sees (data, less where the files are and how they are loaded) and the seed. The
# trainer may differ (more epochs, other devices), as may the evaluator, loggers and callbacks.
RESUMED_SECTIONS = ("model", "data", "seed")
_NOT_THE_EXPERIMENT = {"root", "cache_dir", "num_workers", "prepare_workers", "progress"}


def config_changes(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The ``model``/``data``/``seed`` keys whose values differ between the config a checkpoint was written
    with (``stored``, as in ``checkpoint["musicbench_config"]``) and ``current`` (both resolved, plain
    containers), as ``"key: stored -> current"`` lines in key order. Data roots (``root``, ``*_root``),
    the cache folder and loader/progress settings are not compared: they do not change what is computed.
    """
    old, new = _flat(upgrade_config(dict(stored))), _flat(dict(current))
    lines = []
    for key in sorted(set(old) | set(new)):
        if key.split(".")[0] not in RESUMED_SECTIONS:
            continue
        leaf = key.rsplit(".", 1)[-1]
        if leaf in _NOT_THE_EXPERIMENT or leaf.endswith("_root"):
            continue
        missing = "<absent>"
        if old.get(key, missing) != new.get(key, missing):
            lines.append(f"{key}: {old.get(key, missing)!r} -> {new.get(key, missing)!r}")
    return lines


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": 1, "c": [1, 2]}`` (lists are values)."""
    if not isinstance(node, Mapping):
        return {prefix: node}
    out: dict[str, Any] = {}
    for k, v in node.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flat(v, key) if isinstance(v, Mapping) and v else {key: v})
    return out


def check_resumed_config(ckpt: str | Path, current: Mapping[str, Any], run_dir: str | Path) -> None:
    """Refuse to resume ``run_dir``'s checkpoint ``ckpt`` with a config that trains another experiment.

    The same command finds the same run folder (its name hashes the command-line overrides), so after a
    change to a config default it would continue the old run with the new settings: a run half one
    experiment, half another. Raises :class:`~musicbench.errors.ConfigError` listing the keys that differ
    (:func:`config_changes`) and what to do. A checkpoint without a stored config is not checked.
    """
    state = torch.load(ckpt, map_location="cpu", mmap=True, weights_only=False)
    stored = state.get(CONFIG_KEY) if isinstance(state, dict) else None
    if not isinstance(stored, Mapping):
        return
    changes = config_changes(stored, current)
    if not changes:
        return
    shown = first_few(changes)
    raise ConfigError(
        f"{run_dir} holds a run trained with another config than this command's ({len(changes)} "
        f"setting(s) differ, stored -> now: {shown}). The same overrides lead to the same run folder, so a "
        "config default has changed since. Train in a new folder (add e.g. run_id=2, or name=<new name>), "
        f"or delete {run_dir} to train it again; ckpt_path={ckpt} resumes from it anyway"
    )


def checkpoint_problem(path: str | Path) -> str | None:
    """Why the training checkpoint ``path`` cannot be resumed from (truncated, corrupt, not a Lightning
    checkpoint), or ``None`` if it can. Cheap: tensors are memory-mapped, not read."""
    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    except Exception as exc:  # a truncated zip, a bad pickle, ...: all mean "cannot be read"
        return f"{type(exc).__name__}: {exc}"
    if not isinstance(state, dict) or "state_dict" not in state:
        return "no 'state_dict': not a Lightning checkpoint"
    return None


def resume_step(path: str | Path) -> int:
    """How many training batches the checkpoint ``path`` has done: the first step a run resumed from it
    logs (Lightning logs metrics at this count, not at ``global_step``, which counts optimizer steps)."""
    state = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    loop = state.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
    step = int(loop.get("_batches_that_stepped", state.get("global_step", 0)))
    # Written in on_train_batch_end (a preemption): the batch is done but not yet counted as stepped.
    return step + 1 if (state.get(PREEMPTED_KEY) or {}).get("in_batch_end") else step


def _checkpoint_files(ckpt_dir: Path) -> list[Path]:
    """The ``*.ckpt`` files of a folder, without hidden ones (temporary files of a write in progress)."""
    return [p for p in ckpt_dir.glob("*.ckpt") if not p.name.startswith(".") and p.is_file()]


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder whose best checkpoint (the newest that is not ``last.ckpt``;
    else ``last.ckpt``) is returned."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        ckpt_dir = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        best = sorted(p for p in _checkpoint_files(ckpt_dir) if p.name != LAST)
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
