"""Evaluate a model (separator or restorer) on a datamodule split with the evaluation runner, and the
test stage that ``mb-train`` and ``mb-eval`` share."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from musicbench.data.identity import split_digest, split_fingerprints
from musicbench.data.tracks import DatasetError
from musicbench.evaluation.report import print_summary
from musicbench.evaluation.runner import Evaluator
from musicbench.models.base import System
from musicbench.utils.files import sha256_file
from musicbench.utils.provenance import digest_of

log = logging.getLogger(__name__)


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
    the same folder are recomputed, results of this one are reused (resume). Each track's digest also
    holds the fingerprint of its data (:mod:`musicbench.data.identity`): a track whose files changed is
    evaluated again, and ``summary.json`` records the split's ``data_digest``. ``shard=(k, n)`` evaluates
    every n-th track from the k-th; ``merge=True`` evaluates nothing and builds ``summary.json`` from the
    results of all shards.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(device).eval()
    tracks = datamodule.tracks(split)
    if not tracks:
        raise DatasetError(f"no tracks in split '{split}' of {getattr(datamodule, 'root', datamodule)}")

    def estimate(mixture: torch.Tensor, name: str) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            systems = model.estimate_systems(mixture.to(device), name)
            return {k: v.float().cpu() for k, v in systems.items()}

    # The baseline enters as a list, the form of the results already on disk (same digest, reused).
    baselines = [evaluator.input_baseline] if evaluator.input_baseline is not None else []
    # Oracles enter only when there are some: results without them keep their digest (reused).
    oracles = [sorted(evaluator.oracles)] if evaluator.oracles else []
    digest = digest_of(model_id, sorted(evaluator.metrics), baselines, split, *oracles)
    fingerprints = split_fingerprints(datamodule, split, progress=evaluator.progress)
    meta = {"split": split, **(meta or {}), "data_digest": split_digest(fingerprints)}
    if merge:
        return evaluator.merge(tracks, out_dir, digest=digest, meta=meta, fingerprints=fingerprints)
    summary = evaluator.evaluate(
        tracks, estimate, out_dir, digest=digest, meta=meta, shard=shard, fingerprints=fingerprints
    )
    if evaluator.excerpts and (shard is None or shard[0] == 0):
        from musicbench.evaluation.excerpts import save_excerpts

        save_excerpts(
            model, tracks, out_dir, evaluator.excerpts, evaluator.excerpt_seconds, evaluator.excerpt_range_db
        )
    return summary


def run_test(
    model: System,
    datamodule: Any,
    evaluator: Evaluator,
    out_dir: str | Path,
    *,
    checkpoint: Path | None,
    model_target: str,
    run_name: str,
    split: str = "test",
    in_memory_id: str = "in-memory",
    config_digest: str | None = None,
    shard: tuple[int, int] | None = None,
    merge: bool = False,
) -> dict[str, Any]:
    """The test stage: evaluate the model's weights from ``checkpoint`` on ``split``, print the table.

    Results are keyed by the checkpoint's sha256 (``in_memory_id`` for weights that are in no file).
    ``summary.json`` names the model class (``model_target``), the data root and its digest, the checkpoint, the
    training run's ``name`` and, from ``mb-train``, the digest of its config. ``shard``/``merge``: see
    :func:`evaluate_model`. Returns the summary.
    """
    # Every datamodule names its root (MP3 pairs: of their clean source); the summary names it absolute.
    data_root = str(Path(datamodule.root).expanduser().resolve())
    log.info(
        "evaluating %s on %s/%s%s",
        checkpoint or "the in-memory weights",
        data_root,
        split,
        f" (shard {shard[0]}/{shard[1]})" if shard else "",
    )
    meta: dict[str, Any] = {
        "model": model_target,
        "data": data_root,
        "checkpoint": str(checkpoint) if checkpoint else "",
    }
    if config_digest is not None:
        meta["config_digest"] = config_digest
    meta["name"] = run_name
    summary = evaluate_model(
        model,
        datamodule,
        evaluator,
        out_dir,
        split=split,
        model_id=sha256_file(checkpoint) if checkpoint else in_memory_id,
        meta=meta,
        shard=shard,
        merge=merge,
    )
    print_summary(summary)
    if shard:
        log.info("shard %d/%d done; when all shards are: mb-eval ... merge=true", *shard)
    log.info("results written to %s", out_dir)
    return summary
