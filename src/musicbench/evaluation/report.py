"""Human-readable reports of a ``summary.json``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table


def summary_table(summary: Mapping[str, Any], stat: str = "median", title: str | None = None) -> Table:
    """A per-source table of the model's scores; with a mixture baseline each cell also shows the
    improvement over it, ``value (+Δ)`` in dB. The last row averages the sources.
    """
    systems = summary["systems"]
    model = systems["model"][stat]
    base = systems.get("mixture", {}).get(stat)
    sources = list(model)
    metrics = list(dict.fromkeys(m for s in sources for m in model[s]))
    default_title = f"{stat} over {summary['num_tracks']} {summary.get('split', '')} tracks (dB)"
    caption = "value (improvement over the mixture baseline)" if base else None
    table = Table(title=title or default_title, caption=caption)
    table.add_column("source")
    for m in metrics:
        table.add_column(m, justify="right")

    def cells(get) -> list[str]:
        out = []
        for m in metrics:
            v = get(model, m)
            out.append(f"{v:.2f}" + (f" ({v - get(base, m):+.2f})" if base else ""))
        return out

    for source in sources:
        table.add_row(source, *cells(lambda d, m, s=source: d[s].get(m, float("nan"))))
    if len(sources) > 1:
        table.add_section()
        table.add_row("mean", *cells(lambda d, m: float(np.mean([d[s].get(m, np.nan) for s in sources]))))
    return table


def print_summary(summary: Mapping[str, Any], console: Console | None = None) -> None:
    """Print the median (MUSDB protocol) per-source table of a summary."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and pipes: don't squeeze the columns into 80 characters
            console.width = 200
    console.print(summary_table(summary))
