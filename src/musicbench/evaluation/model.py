"""Evaluate a model (separator or restorer) on a datamodule split with the evaluation runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from musicbench.evaluation.runner import Evaluator
from musicbench.models.base import System
from musicbench.utils.provenance import digest_of


def evaluate_model(
    model: System,
    datamodule: Any,
    evaluator: Evaluator,
    out_dir: str | Path,
    split: str = "test",
    model_id: str = "",
    meta: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
    shard: tuple[int, int] | None = None,
    merge: bool = False,
) -> dict[str, Any]:
    """Estimate every track of ``split`` with ``model.estimate_systems`` and score each system.

    ``model_id`` (e.g. the checkpoint's sha256) enters the results digest: results of another model in
    the same folder are recomputed, results of this one are reused (resume). ``shard=(k, n)`` evaluates
    every n-th track from the k-th; ``merge=True`` evaluates nothing and builds ``summary.json`` from the
    results of all shards.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(device).eval()
    tracks = datamodule.tracks(split)
    if not tracks:
        raise ValueError(f"no tracks in split '{split}' of {getattr(datamodule, 'root', datamodule)}")

    def estimate(mixture: torch.Tensor, name: str) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            systems = model.estimate_systems(mixture.to(device), name)
            return {k: v.float().cpu() for k, v in systems.items()}

    # The baseline enters as a list, the form of the results already on disk (same digest, reused).
    baselines = [evaluator.input_baseline] if evaluator.input_baseline is not None else []
    digest = digest_of(model_id, sorted(evaluator.metrics), baselines, split)
    meta = {"split": split, **(meta or {})}
    if merge:
        return evaluator.merge(tracks, out_dir, digest=digest, meta=meta)
    summary = evaluator.evaluate(tracks, estimate, out_dir, digest=digest, meta=meta, shard=shard)
    if evaluator.excerpts and (shard is None or shard[0] == 0):
        from musicbench.evaluation.excerpts import save_excerpts

        save_excerpts(model, tracks, out_dir, evaluator.excerpts, evaluator.excerpt_seconds)
    return summary
