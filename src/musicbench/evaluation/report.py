"""Human-readable reports of a ``summary.json``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def summary_table(summary: Mapping[str, Any], stat: str = "median", title: str | None = None) -> Table:
    """A per-source table of the evaluated systems' scores; with an input baseline (the summary's
    ``input_baseline``, e.g. ``"mixture"`` or ``"input"``) each cell also shows the difference to it, ``value (+Δ)`` (dB for SDR-type metrics and the
    LSD). A single ``model`` system has one row per source plus their mean; several systems (e.g. the
    samples, mean, best-of-K and diversity of a stochastic model) get one section each.

    The title names the number of tracks evaluated; a cell whose value aggregates fewer tracks (NaN
    track values, e.g. a silent reference, are skipped) says so, ``3.10 [n=1]``, from the summary's
    ``num_tracks`` per system, source and metric. A mean row over sources with such cells shows the
    smallest ``n`` of its sources.
    """
    systems = summary["systems"]
    base_name = summary.get("input_baseline")
    base = systems[base_name][stat] if base_name in systems else None
    shown = [n for n in systems if n != base_name]
    first = systems[shown[0]][stat]
    sources = list(first)
    metrics = list(dict.fromkeys(m for n in shown for s in sources for m in systems[n][stat].get(s, {})))
    total = int(summary["num_tracks"])
    partial = any(
        n != total
        for name in shown
        for per_metric in systems[name].get("num_tracks", {}).values()
        for n in per_metric.values()
    )
    default_title = f"{stat} over {total} {summary.get('split', '')} tracks (dB)"
    if partial:
        default_title += escape(f"; [n=k]: over the k of {total} tracks where the value is defined")
    caption = f"value (difference to the {base_name} baseline)" if base else None
    table = Table(title=title or default_title, caption=caption)
    if len(shown) > 1:
        table.add_column("system")
    table.add_column("source")
    for m in metrics:
        table.add_column(m, justify="right")

    def cells(values, get, counts) -> list[str]:
        out = []
        for m in metrics:
            v, n = get(values, m), counts(m)
            count = escape(f" [n={n}]") if n is not None and n != total else ""  # [..] is rich markup
            if np.isnan(v):
                out.append(count.strip())
                continue
            b = get(base, m) if base else float("nan")
            out.append(f"{v:.2f}" + (f" ({v - b:+.2f})" if not np.isnan(b) else "") + count)
        return out

    def count_of(name: str, source_list: list[str]):
        per_source = systems[name].get("num_tracks")
        if per_source is None:  # summaries written before counts were recorded
            return lambda m: None
        return lambda m: min(per_source.get(s, {}).get(m, 0) for s in source_list)

    for i, name in enumerate(shown):
        values = systems[name][stat]
        label = [name] if len(shown) > 1 else []
        if i:
            table.add_section()
        for source in sources:
            table.add_row(
                *label,
                source,
                *cells(
                    values, lambda d, m, s=source: d.get(s, {}).get(m, float("nan")), count_of(name, [source])
                ),
            )
        if len(sources) > 1:
            mean = [""] if len(shown) > 1 else []
            table.add_row(
                *mean,
                "mean",
                *cells(
                    values,
                    lambda d, m: float(np.mean([d[s].get(m, np.nan) for s in sources])),
                    count_of(name, sources),
                ),
            )
    return table


def print_summary(summary: Mapping[str, Any], console: Console | None = None) -> None:
    """Print the median (MUSDB protocol) per-source table of a summary."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and pipes: don't squeeze the columns into 80 characters
            console.width = 200
    console.print(summary_table(summary))
