"""The results schema: per-track JSON, ``summary.json`` aggregation (MUSDB protocol) and ``scores.csv``."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from musicbench.utils.files import write_json_atomic, write_text_atomic

SCHEMA_VERSION = 1


def track_value(values: float | list[float]) -> float:
    """The per-track value of a metric: the scalar itself, or the median over non-NaN frames (MUSDB protocol).

    NaN frames (e.g. BSSEval frames where a reference is silent) are ignored; all-NaN gives NaN.
    """
    if isinstance(values, list | tuple | np.ndarray):
        arr = np.asarray(values, dtype=np.float64)
        arr = arr[~np.isnan(arr)]
        return float(np.median(arr)) if arr.size else math.nan
    return float(values)


def load_results(results_dir: str | Path, key: str = "track") -> dict[str, dict[str, Any]]:
    """Read every ``results/<name>.json`` of a run folder: ``{result[key]: result}`` (``key``: the item's name,
    ``track`` in evaluations).

    Hidden files are the temporaries of atomic writes (a ``kill -9`` during a write can leave one behind;
    another shard may be writing one right now): they are skipped.
    """
    out = {}
    for path in sorted(Path(results_dir).glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"corrupt results file {path}: {exc}; delete it to re-evaluate that track"
            ) from exc
        out[data[key]] = data
    return out


def aggregate(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate per-track results: median and mean over tracks of each track value.

    Returns ``{system: {"median": {source: {metric: v}}, "mean": {...}, "num_tracks": {source: {metric: n}}}}``
    where ``n`` counts the tracks with a value that is not NaN. NaN is skipped and ±inf kept, as museval's
    pandas aggregation (``EvalStore``) does.
    """
    values: dict[str, dict[str, dict[str, list[float]]]] = {}
    for res in results:
        for system, per_source in res["scores"].items():
            for source, per_metric in per_source.items():
                for metric, v in per_metric.items():
                    values.setdefault(system, {}).setdefault(source, {}).setdefault(metric, []).append(v)
    summary: dict[str, Any] = {}
    for system, per_source in values.items():
        med, mean, count = {}, {}, {}
        for source, per_metric in per_source.items():
            med[source], mean[source], count[source] = {}, {}, {}
            for metric, vals in per_metric.items():
                arr = np.asarray(vals, dtype=np.float64)
                valid = arr[~np.isnan(arr)]
                med[source][metric] = float(np.median(valid)) if valid.size else math.nan
                mean[source][metric] = float(np.mean(valid)) if valid.size else math.nan
                count[source][metric] = int(valid.size)
        summary[system] = {"median": med, "mean": mean, "num_tracks": count}
    return summary


def write_scores_csv(results: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write one row per track: ``track`` then ``<system>/<source>/<metric>`` columns (track values)."""
    rows, columns = [], []
    for res in results:
        row = {"track": res["track"]}
        for system, per_source in res["scores"].items():
            for source, per_metric in per_source.items():
                for metric, v in per_metric.items():
                    key = f"{system}/{source}/{metric}"
                    if key not in columns:
                        columns.append(key)
                    row[key] = v
        rows.append(row)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["track", *columns], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buf.getvalue())


def aggregate_summary(results: list[Mapping[str, Any]], **meta: Any) -> dict[str, Any]:
    """The ``summary.json`` content for ``results``: metadata, the aggregate, the notes of every track.

    ``wall_time_s`` is the summed evaluation time of the tracks, so it does not depend on how many
    sessions (resumes, shards) the evaluation took.
    """
    return {
        "schema_version": SCHEMA_VERSION,
        **meta,
        "num_tracks": len(results),
        "tracks": [r["track"] for r in results],
        "wall_time_s": round(sum(r.get("wall_time_s", 0.0) for r in results), 3),
        "protocol": "track value = median over non-NaN frames (or the scalar); summary = median/mean over tracks",
        "systems": aggregate(results),
        "notes": [n for r in results for n in r.get("notes", [])],
    }


def write_summary(path: str | Path, results: list[Mapping[str, Any]], **meta: Any) -> dict[str, Any]:
    """Aggregate ``results`` and write ``summary.json`` atomically with the given metadata."""
    summary = aggregate_summary(results, **meta)
    write_json_atomic(path, summary)
    return summary
