"""Human-readable reports of a ``summary.json``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table


def summary_table(summary: Mapping[str, Any], stat: str = "median", title: str | None = None) -> Table:
    """A per-source table of the evaluated systems' scores; with an input baseline (the summary's
    ``input_baseline``, e.g. ``"mixture"`` or ``"input"``) each cell also shows the difference to it, ``value (+Δ)`` (dB for SDR-type metrics and the
    LSD). A single ``model`` system has one row per source plus their mean; several systems (e.g. the
    samples, mean, best-of-K and diversity of a stochastic model) get one section each.
    """
    systems = summary["systems"]
    base_name = summary.get("input_baseline")
    base = systems[base_name][stat] if base_name in systems else None
    shown = [n for n in systems if n != base_name]
    first = systems[shown[0]][stat]
    sources = list(first)
    metrics = list(dict.fromkeys(m for n in shown for s in sources for m in systems[n][stat].get(s, {})))
    default_title = f"{stat} over {summary['num_tracks']} {summary.get('split', '')} tracks (dB)"
    caption = f"value (difference to the {base_name} baseline)" if base else None
    table = Table(title=title or default_title, caption=caption)
    if len(shown) > 1:
        table.add_column("system")
    table.add_column("source")
    for m in metrics:
        table.add_column(m, justify="right")

    def cells(values, get) -> list[str]:
        out = []
        for m in metrics:
            v = get(values, m)
            if np.isnan(v):
                out.append("")
                continue
            b = get(base, m) if base else float("nan")
            out.append(f"{v:.2f}" + (f" ({v - b:+.2f})" if not np.isnan(b) else ""))
        return out

    for i, name in enumerate(shown):
        values = systems[name][stat]
        label = [name] if len(shown) > 1 else []
        if i:
            table.add_section()
        for source in sources:
            table.add_row(
                *label, source, *cells(values, lambda d, m, s=source: d.get(s, {}).get(m, float("nan")))
            )
        if len(sources) > 1:
            mean = [""] if len(shown) > 1 else []
            table.add_row(
                *mean,
                "mean",
                *cells(values, lambda d, m: float(np.mean([d[s].get(m, np.nan) for s in sources]))),
            )
    return table


def print_summary(summary: Mapping[str, Any], console: Console | None = None) -> None:
    """Print the median (MUSDB protocol) per-source table of a summary."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and pipes: don't squeeze the columns into 80 characters
            console.width = 200
    console.print(summary_table(summary))
