"""Scores of the Cadenza recipes: pyclarity's ``scores.csv``, ``summary.json`` and the printed table."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from musicbench.data.cadenza import EARS, EVAL_ORDER
from musicbench.hearing.standard_audiograms import SEVERITY_GROUPS
from musicbench.utils.files import write_json_atomic, write_text_atomic

# pyclarity's CAD1 scores.csv header.
CAD1_COLUMNS = (
    "song",
    "listener",
    "score",
    *(f"{ear}_{stem}" for stem in sorted(EVAL_ORDER) for ear in EARS),
)


def write_scores_csv(results: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """pyclarity's ``scores.csv``: ``song, listener, score, left_bass, right_bass, ...``, one row per result."""
    buffer = io.StringIO()
    writer = csv.writer(
        buffer, delimiter=",", quotechar='"', quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n"
    )
    writer.writerow(CAD1_COLUMNS)
    for r in results:
        writer.writerow([r["song"], r["listener"], r["score"], *(r["scores"][c] for c in CAD1_COLUMNS[3:])])
    return write_text_atomic(path, buffer.getvalue())


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def summarise(results: Sequence[Mapping[str, Any]], path: Path, **meta: Any) -> dict[str, Any]:
    """Write ``summary.json``: per system the mean HAAQI over (song, listener) items, overall and per
    listener group, with the item counts, and the mean of any other metric the results hold under
    ``metrics`` (e.g. ``snr``, ``sdr`` in dB); returns it."""
    systems: dict[str, Any] = {}
    for r in results:
        entry = systems.setdefault(r["system"], {"items": [], "groups": {}, "metrics": {}})
        entry["items"].append(r["score"])
        entry["groups"].setdefault(r["group"], []).append(r["score"])
        for metric, value in r.get("metrics", {}).items():
            if metric != "haaqi":
                entry["metrics"].setdefault(metric, []).append(value)
    summary = {
        **meta,
        "num_items": len(results),
        "systems": {
            name: {
                "haaqi": _mean(e["items"]),
                "num_items": len(e["items"]),
                **{metric: _mean(values) for metric, values in e["metrics"].items()},
                "groups": {
                    g: {"haaqi": _mean(e["groups"][g]), "num_items": len(e["groups"][g])}
                    for g in SEVERITY_GROUPS
                    if g in e["groups"]
                },
            }
            for name, e in systems.items()
        },
        "notes": [f"{r['item']}/{n}" for r in results for n in r.get("notes", [])],
    }
    write_json_atomic(path, summary)
    return summary


def summary_table(summary: Mapping[str, Any]) -> Table:
    """One row per system: mean HAAQI overall and per listener group (``n`` items in each header), then the
    mean SNR and SDR where the results have them."""
    systems = summary["systems"]
    groups = [g for g in SEVERITY_GROUPS if any(g in s["groups"] for s in systems.values())]
    pairs = summary["num_items"] // max(len(systems), 1)
    unit = summary.get("unit", "items")
    table = Table(
        title=f"{summary.get('recipe', '')}: mean over {pairs} {unit} ({summary.get('split', '')} split)"
    )
    extra = [m for m in ("snr", "sdr") if any(m in s for s in systems.values())]
    table.add_column("system")
    table.add_column("HAAQI", justify="right")
    for g in groups:
        n = max(s["groups"].get(g, {}).get("num_items", 0) for s in systems.values())
        table.add_column(f"{g} (n={n})", justify="right")
    for m in extra:
        table.add_column(f"{m.upper()} dB", justify="right")
    for name, s in systems.items():
        cells = [f"{s['haaqi']:.4f}"]
        cells += [f"{s['groups'][g]['haaqi']:.4f}" if g in s["groups"] else "" for g in groups]
        cells += [f"{s[m]:.2f}" if m in s else "" for m in extra]
        table.add_row(name, *cells)
    return table


def print_summary(summary: Mapping[str, Any], console: Console | None = None) -> None:
    """Print :func:`summary_table` (and the notes of undefined scores, if any)."""
    console = console or Console()
    console.print(summary_table(summary))
    for note in summary.get("notes", []):
        console.print(f"note: {note}", markup=False)
