"""Human-readable reports of a ``summary.json``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table


def summary_table(summary: Mapping[str, Any], stat: str = "median", title: str | None = None) -> Table:
    """A per-source table: for each metric the model, the mixture baseline and the improvement (dB)."""
    systems = summary["systems"]
    model = systems["model"][stat]
    base = systems.get("mixture", {}).get(stat)
    sources = list(model)
    metrics = list(next(iter(model.values()))) if model else []
    table = Table(title=title or f"{stat} over {summary['num_tracks']} tracks (dB)")
    table.add_column("source")
    for m in metrics:
        table.add_column(f"{m}", justify="right")
        if base:
            table.add_column(f"{m} mixture", justify="right")
            table.add_column(f"{m} Δ", justify="right")
    rows = {s: model[s] for s in sources}
    for source, vals in rows.items():
        cells = [source]
        for m in metrics:
            cells.append(f"{vals[m]:.2f}")
            if base:
                cells += [f"{base[source][m]:.2f}", f"{vals[m] - base[source][m]:+.2f}"]
        table.add_row(*cells)
    return table


def print_summary(summary: Mapping[str, Any], console: Console | None = None) -> None:
    """Print the median (MUSDB protocol) per-source table of a summary."""
    (console or Console()).print(summary_table(summary))
