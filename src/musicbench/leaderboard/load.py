"""Finding and reading run folders: ``summary.json``, ``results/<track>.json`` and the stored config.

A *run folder* is a folder with a ``summary.json``: an ``mb-train`` / ``mb-eval`` run (per-track results
keyed by ``track``, scores per system, source and metric) or an ``mb-cadenza`` pipeline run (results per
item, a system × scene × listener, keyed by ``item``). Folders of museval track JSON files (SiSEC
submissions, or ours exported with :mod:`musicbench.evaluation.museval_json`) are read as one system each.

Every run becomes a :class:`Run` whose ``scores`` is a long table, one row per system, track, source and
metric with the track value (for framewise metrics, the median over the non-NaN frames: the MUSDB
protocol, already applied by the writer).
"""

from __future__ import annotations

import glob
import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from musicbench.evaluation.museval_json import read_museval_dir
from musicbench.evaluation.results import load_results
from musicbench.leaderboard.errors import (
    LeaderboardError,
    MissingResultsError,
    MissingSummaryError,
    NoRunsError,
)

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
RESULTS = "results"
SCORE_COLUMNS = ["system", "track", "source", "metric", "value"]
# The metrics that are better when lower, besides those a run's evaluator lists (`lower_is_better`).
LOWER_IS_BETTER = frozenset({"lsd", "lsd_high"})
# The source name of a pipeline item's score (one score per item, not per source).
PIPELINE_SOURCE = "mix"
# Model families whose task has another name (the GAN restorer lives in models/adversarial.py).
_TASK_OF_FAMILY = {"adversarial": "restoration"}


@dataclass
class Run:
    """One run folder (or one imported museval folder) as the leaderboard uses it.

    Attributes:
        path: the folder.
        name: the run's name (``summary.json``'s ``name``, the experiment; else the folder's name).
        kind: ``"eval"`` (mb-train / mb-eval), ``"pipeline"`` (mb-cadenza) or ``"museval"``.
        task: ``separation`` / ``restoration`` (the model family), ``cadenza`` (pipelines), or ``""``.
        dataset: the name of the data folder (``chorales``, ``musdb18hq``); ``""`` matches any dataset.
        split: the evaluated split (``test``).
        input_baseline: the system scored with the model's input as the estimate (``mixture``, ``input``).
        config: the stored config, flattened to ``{"model.net.depth": 6, ...}`` (``{}`` when absent).
        overrides: the command-line overrides of the run (``.hydra/overrides.yaml``).
        lower_is_better: metrics of this run that are better when lower.
        scores: columns ``system, track, source, metric, value``.
    """

    path: Path
    name: str
    kind: str
    task: str
    dataset: str
    split: str
    input_baseline: str | None
    config: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    lower_is_better: frozenset[str] = LOWER_IS_BETTER
    scores: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SCORE_COLUMNS))

    @property
    def seed(self) -> Any:
        """The run's top-level ``seed`` (``None`` when its config has none)."""
        return self.config.get("seed")


def find_run_folders(patterns: Iterable[str | Path]) -> list[Path]:
    """The run folders that ``patterns`` name, in order, each once.

    A pattern is a run folder, a folder searched recursively for run folders (a sweep, ``experiments/<study>``),
    or a glob of either (``outputs/train/*/*``, ``**`` allowed). Raises :class:`NoRunsError` naming a
    pattern that matches nothing, :class:`MissingSummaryError` for a folder given by name that looks like a
    run folder (``results/``, ``config.yaml`` or ``.hydra/``) but has no summary (matched by a glob, such a
    folder is skipped with a warning).
    """
    found: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        match_is_glob = glob.has_magic(text)
        matches = (
            [Path(p) for p in sorted(glob.glob(text, recursive=True))] if match_is_glob else [Path(text)]
        )
        matches = [m for m in matches if m.exists()]
        if not matches:
            raise NoRunsError(f"{text}: no such file or folder")
        hits: list[Path] = []
        for match in matches:
            if match.is_file():
                match = match.parent if match.name == SUMMARY else match
            if (match / SUMMARY).is_file():
                hits.append(match)
                continue
            if _looks_like_run(match):
                message = (
                    f"{match} has no {SUMMARY}: its evaluation has not finished (rerun it to resume), or it "
                    "was evaluated in shards that are not merged yet (mb-eval ... merge=true)"
                )
                if match_is_glob:  # one run of a glob still running: the others are a table
                    log.warning("skipped %s", message)
                    continue
                raise MissingSummaryError(message)
            if match.is_dir():
                hits.extend(sorted(p.parent for p in match.rglob(SUMMARY) if not _hidden(p, match)))
        if not hits:
            raise NoRunsError(
                f"{text}: no run folder (a folder with {SUMMARY}) there; give run folders, a sweep folder "
                "or a glob of them, or a museval folder with --museval"
            )
        found.extend(hits)
    return list(dict.fromkeys(p.resolve() for p in found))


def _looks_like_run(folder: Path) -> bool:
    return folder.is_dir() and any((folder / n).exists() for n in (RESULTS, "config.yaml", ".hydra"))


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts[:-1])


def load_run(folder: str | Path) -> Run:
    """Read one run folder (``summary.json``, its per-track results, its config)."""
    folder = Path(folder)
    summary_path = folder / SUMMARY
    try:
        summary = json.loads(summary_path.read_text())
    except FileNotFoundError as exc:
        raise MissingSummaryError(f"{folder} has no {SUMMARY}") from exc
    except json.JSONDecodeError as exc:
        raise LeaderboardError(f"{summary_path} is not valid JSON ({exc}); rerun the evaluation") from exc
    config = _read_config(folder)
    overrides = _read_overrides(folder)
    # An mb-eval run: the model is the training run's. (mb-train tests its own checkpoint: its config is
    # the model's; its checkpoint path may also name a folder that is gone or was copied elsewhere.)
    if summary.get("checkpoint") and "ckpt_path" in config and config.get("task_name") != "train":
        config = _with_training_config(config, Path(summary["checkpoint"]))
    lower = LOWER_IS_BETTER | frozenset(config.get("evaluator.lower_is_better") or ())
    if "recipe" in summary:  # an mb-cadenza pipeline run
        return Run(
            path=folder,
            name=str(summary.get("recipe") or folder.name),
            kind="pipeline",
            task="cadenza",
            dataset=_dataset_name(summary.get("data")),
            split=str(summary.get("split", "")),
            input_baseline="mixture" if "mixture" in summary.get("systems", {}) else None,
            config=config,
            overrides=overrides,
            lower_is_better=lower,
            scores=_pipeline_scores(folder),
        )
    return Run(
        path=folder,
        name=str(summary.get("name") or config.get("name") or folder.name),
        kind="eval",
        task=_task(summary.get("model") or config.get("model._target_")),
        dataset=_dataset_name(summary.get("data")),
        split=str(summary.get("split", "")),
        input_baseline=summary.get("input_baseline"),
        config=config,
        overrides=overrides,
        lower_is_better=lower,
        scores=_eval_scores(folder, summary),
    )


def load_museval(folder: str | Path, name: str | None = None, split: str = "test") -> Run:
    """Read a folder of museval track JSON files, ``<folder>/<split>/**/<track>.json`` (museval's layout;
    SiSEC 2018's published results are one such folder per method), as one system named ``name``
    (default: the folder's name). Its dataset is ``""``, which any ``--dataset`` filter matches."""
    folder = Path(folder)
    name = name or folder.resolve().name
    try:
        results = read_museval_dir(folder, subset=split, system=name)
    except FileNotFoundError as exc:
        raise NoRunsError(
            f"{folder}: no museval JSON files under {folder / split} (museval writes <folder>/<split>/<track>.json)"
        ) from exc
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise LeaderboardError(f"{folder}: not museval track JSON ({exc!r})") from exc
    return Run(
        path=folder,
        name=name,
        kind="museval",
        task="separation",
        dataset="",
        split=split,
        input_baseline=None,
        scores=scores_frame(
            (name, r["track"], source, metric, value)
            for r in results
            for source, per_metric in r["scores"][name].items()
            for metric, value in per_metric.items()
        ),
    )


def scores_frame(rows: Iterable[tuple[str, str, str, str, float]]) -> pd.DataFrame:
    """A long score table from ``(system, track, source, metric, value)`` rows."""
    frame = pd.DataFrame(list(rows), columns=SCORE_COLUMNS)
    frame["value"] = frame["value"].astype("float64")
    return frame


def _eval_scores(folder: Path, summary: Mapping[str, Any]) -> pd.DataFrame:
    results_dir = folder / RESULTS
    if not results_dir.is_dir():
        raise MissingResultsError(
            f"{folder} has {SUMMARY} but no {RESULTS}/ folder with the per-track scores the statistics need"
        )
    try:
        results = load_results(results_dir)
    except (ValueError, KeyError) as exc:
        raise LeaderboardError(f"{results_dir}: {exc}") from exc
    tracks = list(summary.get("tracks") or results)
    missing = [t for t in tracks if t not in results]
    if missing:
        raise MissingResultsError(
            f"{results_dir}: no results for {len(missing)} track(s) {SUMMARY} lists ({', '.join(missing[:3])}"
            f"{', ...' if len(missing) > 3 else ''}); rerun the evaluation to write them"
        )
    # summary.json decides which tracks count: results of tracks it does not list are not part of it.
    return scores_frame(
        (system, track, source, metric, _as_float(value))
        for track in tracks
        for system, per_source in results[track].get("scores", {}).items()
        for source, per_metric in per_source.items()
        for metric, value in per_metric.items()
    )


def _pipeline_scores(folder: Path) -> pd.DataFrame:
    results_dir = folder / RESULTS
    if not results_dir.is_dir():
        raise MissingResultsError(f"{folder} has {SUMMARY} but no {RESULTS}/ folder with the per-item scores")
    try:
        items = load_results(results_dir, key="item")
    except (ValueError, KeyError) as exc:
        raise LeaderboardError(f"{results_dir}: {exc}") from exc
    # An item is system × scene × listener; the systems are compared on the same scene and listener.
    return scores_frame(
        (item["system"], f"{item['scene']}/{item['listener']}", PIPELINE_SOURCE, metric, _as_float(value))
        for item in items.values()
        for metric, value in item.get("metrics", {}).items()
    )


def _read_config(folder: Path) -> dict[str, Any]:
    for candidate in (folder / "config.yaml", folder / ".hydra" / "config.yaml"):
        if candidate.is_file():
            try:
                container = OmegaConf.to_container(OmegaConf.load(candidate), resolve=False)
            except Exception as exc:  # a broken YAML file: the scores are still usable
                raise LeaderboardError(f"{candidate}: cannot read the config ({exc})") from exc
            return flatten({str(k): v for k, v in container.items()}) if isinstance(container, dict) else {}
    return {}


def _with_training_config(eval_config: dict[str, Any], checkpoint: Path) -> dict[str, Any]:
    """An ``mb-eval`` run's config as the model's identity: the training run's stored config (the run folder
    of ``<run>/checkpoints/<file>.ckpt``, when it is there) plus the evaluation's own keys under ``eval.``
    (without ``ckpt_path``: seed runs of one config are then one system). Without the training folder, the
    eval config as it is (``ckpt_path`` tells the models apart)."""
    run_folder = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    training = _read_config(run_folder)
    if not training:
        return eval_config
    local = ("ckpt_path", "paths.", "hydra.", "checkpoint_paths.")
    return {**training, **{f"eval.{k}": v for k, v in eval_config.items() if not k.startswith(local)}}


def _read_overrides(folder: Path) -> list[str]:
    path = folder / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    loaded = OmegaConf.to_container(OmegaConf.load(path))
    return [str(o) for o in loaded] if isinstance(loaded, list) else []


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": 1, "c": [1, 2]}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _task(model_target: Any) -> str:
    """The model family of a ``_target_`` under ``musicbench.models`` (``separation``, ``restoration``)."""
    parts = str(model_target or "").split(".")
    if len(parts) >= 4 and parts[:2] == ["musicbench", "models"]:
        return _TASK_OF_FAMILY.get(parts[2], parts[2])
    return ""


def _dataset_name(data: Any) -> str:
    return Path(str(data)).name if data else ""


def _as_float(value: Any) -> float:
    return math.nan if value is None else float(value)
