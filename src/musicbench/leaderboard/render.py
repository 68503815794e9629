"""Rendering a :class:`~musicbench.leaderboard.table.Leaderboard`: a rich table for the terminal, Markdown,
CSV (one column per statistic, full precision) and a self-contained HTML page (inline CSS, no scripts).

A cell reads ``4.54* (+9.03)`` then ``[3.90, 5.10]`` and ``IQR 1.20``: the aggregate over tracks (``*``
the column's best system, ``~`` not significantly different from it), its difference to the input
baseline, the bootstrap confidence interval and the interquartile range of the track values.
"""

from __future__ import annotations

import csv
import html
import io
import math
from typing import Any

from rich.markup import escape
from rich.table import Table

from musicbench.leaderboard.systems import format_value
from musicbench.leaderboard.table import Cell, Leaderboard

BEST_MARK = "*"
TIED_MARK = "~"
FORMATS = ("rich", "markdown", "csv", "html")


def _num(v: float) -> str:
    return "" if math.isnan(v) else f"{v:.2f}"


def cell_lines(cell: Cell | None) -> list[str]:
    """The lines of a cell's text: value with its mark and difference, CI, IQR (none for an empty cell)."""
    if cell is None or math.isnan(cell.value):
        return []
    mark = BEST_MARK if cell.best else TIED_MARK if cell.tied else ""
    first = f"{cell.value:.2f}{mark}" + (f" ({cell.delta:+.2f})" if not math.isnan(cell.delta) else "")
    lines = [first]
    if not math.isnan(cell.ci_low):
        lines.append(f"[{cell.ci_low:.2f}, {cell.ci_high:.2f}]")
    if not math.isnan(cell.q25):
        lines.append(f"IQR {cell.iqr:.2f}")
    return lines


def title(board: Leaderboard) -> str:
    """``separation on chorales/test: 8 tracks``."""
    tracks = max((c.n for c in board.cells.values()), default=0)
    where = "/".join(x for x in (board.dataset, board.split) if x)
    return f"{board.task or 'results'} on {where or 'unnamed data'}: {tracks} tracks"


def legend(board: Leaderboard) -> str:
    """What the numbers in a cell are: the statistics and the test settings."""
    s = board.settings
    statistics = sorted({c.statistic for c in board.columns})
    base = f" (difference to {board.baseline})" if board.baseline else ""
    correction = "Holm-adjusted" if s["correction"] == "holm" else "unadjusted"
    seeds = "seed runs averaged per track" if s["seeds"] == "mean" else "one row per seed run"
    return (
        f"value: {'/'.join(statistics)} over tracks{base}; [{s['confidence']:.0%} bootstrap CI, "
        f"{s['n_resamples']} resamples, seed {s['seed']}]; IQR of the track values. {BEST_MARK} best system; "
        f"{TIED_MARK} not significantly different from it (Wilcoxon signed-rank over common tracks, "
        f"{correction} p >= {s['alpha']}). {seeds}." + "".join(f" Note: {n}." for n in board.notes)
    )


def _config_text(board: Leaderboard, i: int) -> str:
    entry = board.entries[i]
    if entry.role != "system":
        return entry.role
    return " ".join(f"{k}={format_value(entry.config.get(k, '-'))}" for k in board.diff_keys)


def _runs_text(board: Leaderboard, i: int) -> str:
    entry = board.entries[i]
    seeds = entry.seeds
    if entry.role == "system" and seeds:
        return f"{len(entry.runs)} (seed {', '.join(map(str, seeds))})"
    return str(len(entry.runs))


def to_rich(board: Leaderboard) -> Table:
    """A rich table (one row per system, lines per cell as :func:`cell_lines`)."""
    table = Table(title=escape(title(board)), caption=escape(legend(board)), show_lines=True)
    table.add_column("system")
    table.add_column("runs")
    for c in board.columns:
        table.add_column(escape(f"{c.name} ({c.statistic})"), justify="right")
    if board.diff_keys:
        table.add_column("config")
    for i, entry in enumerate(board.entries):
        cells = [escape("\n".join(cell_lines(board.cells.get((i, j))))) for j in range(len(board.columns))]
        extra = [escape(_config_text(board, i))] if board.diff_keys else []
        table.add_row(escape(entry.label), _runs_text(board, i), *cells, *extra)
    return table


def to_markdown(board: Leaderboard) -> str:
    """A Markdown (GitHub) table with the title above and the legend below."""
    head = ["system", "runs", *(f"{c.name} ({c.statistic})" for c in board.columns)]
    head += ["config"] if board.diff_keys else []
    lines = [f"**{title(board)}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, entry in enumerate(board.entries):
        row = [entry.label, _runs_text(board, i)]
        row += ["<br>".join(cell_lines(board.cells.get((i, j)))) for j in range(len(board.columns))]
        row += [_config_text(board, i)] if board.diff_keys else []
        lines.append("| " + " | ".join(v.replace("|", "\\|") for v in row) + " |")
    lines += ["", legend(board), ""]
    return "\n".join(lines)


CSV_STATS = ("value", "delta", "ci_low", "ci_high", "q25", "q75", "n", "p", "p_adjusted", "best", "tied")


def to_csv(board: Leaderboard) -> str:
    """One row per system: ``system, role, runs, seeds``, then ``<source>/<metric>/<statistic>`` for each
    of :data:`CSV_STATS` (full precision, empty when undefined), then ``config:<key>`` per differing key."""
    header = ["system", "role", "runs", "seeds"]
    header += [f"{c.name}/{s}" for c in board.columns for s in CSV_STATS]
    header += [f"config:{k}" for k in board.diff_keys]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for i, entry in enumerate(board.entries):
        row: list[Any] = [entry.label, entry.role, len(entry.runs), " ".join(map(str, entry.seeds))]
        for j in range(len(board.columns)):
            cell = board.cells.get((i, j))
            for s in CSV_STATS:
                v = getattr(cell, s) if cell is not None else ""
                row.append("" if isinstance(v, float) and math.isnan(v) else v)
        row += [format_value(entry.config[k]) if k in entry.config else "" for k in board.diff_keys]
        writer.writerow(row)
    return buf.getvalue()


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; vertical-align: top; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.num span { color: #777; font-size: 0.85em; }
tr.baseline, tr.oracle { background: #f4f4f4; }
td.best { font-weight: bold; background: #e6f4e6; }
td.tied { background: #f2f9f2; }
p.legend { max-width: 60em; font-size: 0.9em; color: #555; }
"""


def to_html(board: Leaderboard) -> str:
    """A self-contained HTML page (inline CSS, no scripts, no external files)."""
    esc = html.escape
    head = ["system", "runs", *(f"{c.name} ({c.statistic})" for c in board.columns)]
    head += ["config"] if board.diff_keys else []
    rows = []
    for i, entry in enumerate(board.entries):
        tds = [f"<td>{esc(entry.label)}</td>", f"<td>{esc(_runs_text(board, i))}</td>"]
        for j in range(len(board.columns)):
            cell = board.cells.get((i, j))
            lines = cell_lines(cell)
            klass = "num" + (" best" if cell and cell.best else " tied" if cell and cell.tied else "")
            inner = esc(lines[0]) + "".join(f"<br><span>{esc(x)}</span>" for x in lines[1:]) if lines else ""
            tds.append(f'<td class="{klass}">{inner}</td>')
        if board.diff_keys:
            tds.append(f"<td>{esc(_config_text(board, i))}</td>")
        rows.append(f'<tr class="{entry.role}">' + "".join(tds) + "</tr>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title(board))}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title(board))}</h1>\n<table>\n<thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + "</tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + f'\n</tbody>\n</table>\n<p class="legend">{esc(legend(board))}</p>\n</body>\n</html>\n'
    )


def render(board: Leaderboard, fmt: str) -> str:
    """The leaderboard as text in ``fmt`` (``markdown``, ``csv``, ``html``)."""
    renderers = {"markdown": to_markdown, "csv": to_csv, "html": to_html}
    return renderers[fmt](board)
