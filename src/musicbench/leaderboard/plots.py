"""Box and strip plots of the track scores by system, one panel per source and metric (the figures of the
SiSEC 2018 paper: a box of the quartiles, whiskers at 1.5 IQR, and every track as a dot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from musicbench.leaderboard.errors import LeaderboardError
from musicbench.leaderboard.table import Leaderboard, _values
from musicbench.utils.files import atomic_path

PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def plot_leaderboard(board: Leaderboard, path: str | Path, seed: int = 0) -> Path:
    """Save a grid of panels (rows: metrics, columns: sources) to ``path`` (PNG, SVG or PDF from the suffix),
    atomically. In each panel, one box per row of the leaderboard, in its order, and the track values as
    dots jittered sideways (seeded by ``seed``, so a rerun draws the same figure)."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise LeaderboardError(f"--plot {path}: the file name must end in {', '.join(PLOT_SUFFIXES)}")
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    sources = list(dict.fromkeys(c.source for c in board.columns))
    metrics = list(dict.fromkeys(c.metric for c in board.columns))
    labels = [e.label for e in board.entries]
    width = max(3.0, 0.6 * len(labels) + 1.5)
    fig, axes = plt.subplots(
        len(metrics), len(sources), figsize=(width * len(sources), 3.6 * len(metrics)), squeeze=False
    )
    rng = np.random.default_rng(seed)
    for column in board.columns:
        ax = axes[metrics.index(column.metric)][sources.index(column.source)]
        data = []
        for entry in board.entries:
            _, values = _values(entry.scores, column)
            data.append(values[~np.isnan(values)])
        positions = np.arange(1, len(data) + 1)
        ax.boxplot(data, positions=positions, widths=0.6, showfliers=False)
        for pos, values, entry in zip(positions, data, board.entries, strict=True):
            jitter = rng.uniform(-0.15, 0.15, values.size)
            color = "0.5" if entry.role != "system" else "C0"
            ax.plot(pos + jitter, values, ".", color=color, alpha=0.6, markersize=4)
        ax.set_xticks(positions)
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{column.source}")
        ax.set_ylabel(f"{column.metric} ({column.statistic})" + (" ↓" if column.lower_is_better else ""))
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lower().lstrip("."), dpi=120)
    plt.close(fig)
    return path
