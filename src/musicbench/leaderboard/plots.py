"""Box and strip plots of the track scores by system, one panel per source and metric (the figures of the
SiSEC 2018 paper: a box of the quartiles, whiskers at 1.5 IQR, and every track as a dot); quality vs
diversity of stochastic models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from musicbench.evaluation.systems import BEST_OF_K, DIVERSITY, MEAN, MODEL, sample_names
from musicbench.leaderboard.errors import LeaderboardError
from musicbench.leaderboard.load import Run
from musicbench.leaderboard.table import Leaderboard, _values
from musicbench.utils.files import atomic_path

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
DIVERSITY_COLUMNS = ["run", "source", "kind", "diversity", "value"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _check_suffix(path: Path, option: str) -> None:
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise LeaderboardError(f"{option} {path}: the file name must end in {', '.join(PLOT_SUFFIXES)}")


def plot_leaderboard(board: Leaderboard, path: str | Path, seed: int = 0) -> Path:
    """Save a grid of panels (rows: metrics, columns: sources) to ``path`` (PNG, SVG or PDF from the suffix),
    atomically. In each panel, one box per row of the leaderboard, in its order, and the track values as
    dots jittered sideways (seeded by ``seed``, so a rerun draws the same figure)."""
    path = Path(path)
    _check_suffix(path, "--plot")
    plt = _pyplot()
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


def diversity_points(runs: Sequence[Run], metric: str) -> pd.DataFrame:
    """Quality and diversity of each run, per source: the points :func:`plot_diversity` draws.

    For a stochastic run (``sample_<k>`` systems): ``diversity`` is the mean over tracks of its
    ``diversity`` system's ``pairwise_<metric>`` (the metric between two of its samples, averaged over the
    pairs); one row per sample (``kind`` ``sample``), for ``mean`` and ``best_of_k``, each ``value`` the
    mean over tracks of ``metric`` against the reference. A deterministic run (``model``) is one row at
    diversity 0. Columns ``run, source, kind, diversity, value``; runs without ``metric`` are left out.
    """
    rows = []
    for run in runs:
        scores = run.scores
        systems = set(scores["system"])
        samples = sample_names(systems)
        if samples:
            div = scores[(scores["system"] == DIVERSITY) & (scores["metric"] == f"pairwise_{metric}")]
            if div.empty and len(samples) > 1:
                continue
            # One sample (a GAN without noise): no pairs, diversity 0.
            spread = div.groupby("source")["value"].mean() if len(samples) > 1 else None
            kinds = [(s, "sample") for s in samples] + [(k, k) for k in (MEAN, BEST_OF_K) if k in systems]
        elif MODEL in systems:
            spread = None
            kinds = [(MODEL, MODEL)]
        else:
            continue
        for system, kind in kinds:
            sel = scores[(scores["system"] == system) & (scores["metric"] == metric)]
            for source, value in sel.groupby("source")["value"].mean().items():
                diversity = 0.0 if spread is None else float(spread.get(source, np.nan))
                rows.append((run.name, source, kind, diversity, float(value)))
    return pd.DataFrame(rows, columns=DIVERSITY_COLUMNS)


def plot_diversity(
    runs: Sequence[Run], path: str | Path, metric: str, baseline: str | None = None
) -> pd.DataFrame:
    """Save quality (``metric``, y) against diversity (its pairwise value between samples, x) of the runs,
    one panel per source, to ``path`` (PNG, SVG or PDF), atomically: each sample a dot, the mean and the
    best of K marked, a deterministic model at diversity 0, the input ``baseline`` a dashed line. Returns
    :func:`diversity_points`. Raises :class:`LeaderboardError` when no run is a stochastic model."""
    path = Path(path)
    _check_suffix(path, "--diversity-plot")
    points = diversity_points(runs, metric)
    samples_per_run = points[points["kind"] == "sample"].groupby(["run", "source"]).size()
    if not (samples_per_run > 1).any():
        raise LeaderboardError(
            f"--diversity-plot {path}: no run has samples of a stochastic model scored with {metric} and "
            f"pairwise_{metric} (evaluate a model with num_samples > 1 and a diversity metric)"
        )
    plt = _pyplot()
    sources = list(dict.fromkeys(points["source"]))
    fig, axes = plt.subplots(1, len(sources), figsize=(5.0 * len(sources), 4.0), squeeze=False)
    markers = {"sample": ".", MEAN: "s", BEST_OF_K: "^", MODEL: "D"}
    for ax, source in zip(axes[0], sources, strict=True):
        here = points[points["source"] == source]
        for i, (run, group) in enumerate(here.groupby("run", sort=False)):
            for kind, marker in markers.items():
                sel = group[group["kind"] == kind]
                if not sel.empty:
                    label = f"{run}: {'samples' if kind == 'sample' else kind}"
                    ax.plot(sel["diversity"], sel["value"], marker, color=f"C{i}", label=label, alpha=0.8)
        if baseline:
            scores = pd.concat([r.scores for r in runs])
            sel = scores[
                (scores["system"] == baseline) & (scores["source"] == source) & (scores["metric"] == metric)
            ]
            if not sel.empty:  # the input is the same in every run: one value per track
                level = float(sel.groupby("track")["value"].mean().mean())
                ax.axhline(level, color="0.5", linestyle="--", label=baseline)
        ax.set_xlabel(f"diversity: pairwise {metric} between samples")
        ax.set_ylabel(f"{metric} (mean over tracks)")
        ax.set_title(source)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lower().lstrip("."), dpi=120)
    plt.close(fig)
    return points
