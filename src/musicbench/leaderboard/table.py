"""The leaderboard: one row per system and baseline, one column per source × metric, with its statistics.

Each cell holds, over the tracks of its row (see :mod:`musicbench.leaderboard.stats`):

- the aggregate over tracks: the median for the BSSEval metrics (``sdr``, ``sir``, ``sar``, ``isr``: the
  SiSEC convention; not in ``cadenza`` pipeline runs, whose summaries use means), the mean for the others
  (``aggregate="auto"``), or the one ``aggregate`` names;
- the difference to the input baseline's aggregate (``delta``);
- a percentile bootstrap confidence interval of that aggregate over tracks, and the quartiles of the
  track values;
- the p-value of the Wilcoxon signed-rank test against the column's best system over the tracks both
  have, Holm-adjusted over the column's comparisons (``correction="holm"``) or not (``"none"``); a row
  whose adjusted p is at least ``alpha`` is not significantly different from the best (``tied``).

The best system of a column is the ``system`` row (not a baseline or oracle) with the highest aggregate,
or the lowest for metrics that are better when lower (the LSD).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from musicbench.leaderboard import stats
from musicbench.leaderboard.errors import LeaderboardError, MissingMetricError, NoRunsError
from musicbench.leaderboard.load import Run
from musicbench.leaderboard.systems import ROLE_ORDER, Entry, SeedMode, config_differences, group_entries

# Shown when no metric is asked for: the first of these the runs have (separation, Cadenza, restoration).
HEADLINE_METRICS = ("sdr", "haaqi", "lsd")
# BSSEval metrics: aggregated with the median over tracks (SiSEC, museval's EvalStore).
BSSEVAL_METRICS = frozenset({"sdr", "sir", "sar", "isr"})
Aggregate = Literal["auto", "median", "mean"]
Correction = Literal["holm", "none"]


@dataclass(frozen=True)
class Column:
    """A source × metric column, its aggregate over tracks and its direction."""

    source: str
    metric: str
    statistic: stats.Statistic
    lower_is_better: bool

    @property
    def name(self) -> str:
        return f"{self.source}/{self.metric}"


@dataclass
class Cell:
    """The statistics of one row in one column (NaN where undefined)."""

    value: float
    ci_low: float
    ci_high: float
    q25: float
    q75: float
    n: int
    delta: float = math.nan
    p: float = math.nan
    p_adjusted: float = math.nan
    best: bool = False
    tied: bool = False

    @property
    def iqr(self) -> float:
        return self.q75 - self.q25


@dataclass
class Leaderboard:
    """A computed leaderboard: rows (``entries``), ``columns`` and ``cells[(row, column)]``."""

    entries: list[Entry]
    columns: list[Column]
    cells: dict[tuple[int, int], Cell]
    diff_keys: list[str]
    baseline: str | None
    task: str
    dataset: str
    split: str
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def filter_runs(
    runs: Sequence[Run], task: str | None = None, dataset: str | None = None, split: str | None = None
) -> list[Run]:
    """The runs whose task, dataset and split equal the given ones (``None``: any). A run with an empty
    field (an imported museval folder has no dataset) matches any value of that field."""
    wanted = {"task": task, "dataset": dataset, "split": split}
    return [r for r in runs if all(v is None or getattr(r, k) in ("", v) for k, v in wanted.items())]


def build_leaderboard(
    runs: Sequence[Run],
    *,
    task: str | None = None,
    dataset: str | None = None,
    split: str | None = None,
    metrics: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    aggregate: Aggregate = "auto",
    seeds: SeedMode = "mean",
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    alpha: float = 0.05,
    correction: Correction = "holm",
    lower_is_better: Sequence[str] = (),
    oracles: Sequence[str] = ("oracle",),
    systems: Sequence[str] | None = None,
) -> Leaderboard:
    """Filter ``runs``, group them into rows and compute every cell's statistics (see the module doc).

    ``systems``: shell patterns (``fnmatch``) of the system rows to keep, by label
    (``restore_gan_mp3_32k/mean``); the baseline and oracle rows stay. The tests and corrections are then
    computed over the rows kept. ``None``: every row.

    Raises :class:`NoRunsError` when the filters leave no run, :class:`LeaderboardError` when the runs left
    mix tasks, datasets or splits, :class:`MissingMetricError` naming a metric or source no run has.
    """
    kept = filter_runs(runs, task, dataset, split)
    if not kept:
        have = sorted(
            {f"task={r.task or '-'} dataset={r.dataset or '-'} split={r.split or '-'}" for r in runs}
        )
        raise NoRunsError(
            f"no run matches task={task} dataset={dataset} split={split}; the runs have: {'; '.join(have)}"
        )
    combos = sorted({(r.task, r.dataset, r.split) for r in kept if r.dataset})
    if len(combos) > 1:
        listed = "; ".join(f"task={t} dataset={d} split={s}" for t, d, s in combos)
        raise LeaderboardError(
            f"the runs mix tasks, datasets or splits ({listed}): choose one with --task, --dataset, --split"
        )
    the_task, the_dataset, the_split = combos[0] if combos else (kept[0].task, "", kept[0].split)
    frames = [r.scores for r in kept]
    all_scores = pd.concat(frames, ignore_index=True)
    present = list(dict.fromkeys(all_scores["metric"]))
    if metrics is None:  # the task's headline metric, one column per source; `all` shows every metric
        metrics = next(([m] for m in HEADLINE_METRICS if m in present), None)
    elif list(metrics) == ["all"]:
        metrics = None
    metric_names = _select(present, metrics, "metric", kept)
    source_names = _select(list(dict.fromkeys(all_scores["source"])), sources, "source", kept)
    lower = set(lower_is_better).union(*(r.lower_is_better for r in kept))
    columns = [
        Column(
            s,
            m,
            _statistic(m, aggregate, the_task),
            m in lower,
        )
        for s in source_names
        for m in metric_names
        if ((all_scores["source"] == s) & (all_scores["metric"] == m)).any()
    ]
    entries = group_entries(kept, seeds=seeds, oracles=oracles)
    if systems is not None:
        entries = [
            e for e in entries if e.role != "system" or any(fnmatch.fnmatchcase(e.label, p) for p in systems)
        ]
        if not any(e.role == "system" for e in entries):
            labels = [
                e.label for e in group_entries(kept, seeds=seeds, oracles=oracles) if e.role == "system"
            ]
            raise LeaderboardError(
                f"--system {' '.join(systems)}: no system row matches; the rows are: {', '.join(labels)}"
            )
    baselines = {r.input_baseline for r in kept if r.input_baseline}
    baseline = sorted(baselines)[0] if len(baselines) == 1 else None
    notes = []
    if len(baselines) > 1:
        notes.append(f"several input baselines ({', '.join(sorted(baselines))}): no differences shown")
    for e in entries:
        if e.spread > 1e-6:
            notes.append(
                f"the {e.role} {e.label} differs between runs (by up to {e.spread:.3g} on a track): its row is "
                "the mean per track; are the runs on the same data and evaluation settings?"
            )
    track_values = {
        (i, j): _values(e.scores, c) for i, e in enumerate(entries) for j, c in enumerate(columns)
    }
    cells: dict[tuple[int, int], Cell] = {}
    for (i, j), (tracks, values) in track_values.items():
        if tracks.size == 0:
            continue
        column = columns[j]
        low, high = stats.bootstrap_ci(values, column.statistic, n_resamples, confidence, seed)
        q25, q75 = stats.quartiles(values)
        cells[(i, j)] = Cell(
            value=stats.aggregate(values, column.statistic),
            ci_low=low,
            ci_high=high,
            q25=q25,
            q75=q75,
            n=int(stats.finite_values(values).size),
        )
    for j, column in enumerate(columns):
        _compare(entries, cells, track_values, j, column, baseline, alpha, correction)
    entries, cells = _sorted(entries, cells, columns)
    return Leaderboard(
        entries=entries,
        columns=columns,
        cells=cells,
        diff_keys=config_differences(entries),
        baseline=baseline,
        task=the_task,
        dataset=the_dataset,
        split=the_split,
        settings={
            "aggregate": aggregate,
            "seeds": seeds,
            "n_resamples": n_resamples,
            "confidence": confidence,
            "seed": seed,
            "alpha": alpha,
            "correction": correction,
        },
        notes=notes,
    )


def _select(available: list[str], wanted: Sequence[str] | None, what: str, runs: Sequence[Run]) -> list[str]:
    if not wanted:
        return available
    missing = [w for w in wanted if w not in available]
    if missing:
        folders = ", ".join(str(r.path) for r in runs[:3]) + (", ..." if len(runs) > 3 else "")
        raise MissingMetricError(
            f"no {what} {', '.join(missing)} in the results of {folders}; they have: {', '.join(available)}"
        )
    return list(dict.fromkeys(wanted))


def _statistic(metric: str, aggregate: Aggregate, task: str) -> stats.Statistic:
    if aggregate == "auto":
        # A pipeline's "sdr" is a plain SDR of the remix, summarised with the mean as its summary.json does.
        return "median" if metric in BSSEVAL_METRICS and task != "cadenza" else "mean"
    return aggregate


def _values(scores: pd.DataFrame, column: Column) -> tuple[np.ndarray, np.ndarray]:
    """The row's tracks and values in one column, sorted by track."""
    sel = scores[(scores["source"] == column.source) & (scores["metric"] == column.metric)]
    sel = sel.sort_values("track")
    return sel["track"].to_numpy(dtype=object), sel["value"].to_numpy(dtype=np.float64)


def _compare(
    entries: list[Entry],
    cells: dict[tuple[int, int], Cell],
    track_values: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]],
    j: int,
    column: Column,
    baseline: str | None,
    alpha: float,
    correction: Correction,
) -> None:
    """Fill a column's differences to the baseline, its best row and the tests against the best."""
    base_i = next((i for i, e in enumerate(entries) if e.role == "baseline" and e.system == baseline), None)
    base_cell = cells.get((base_i, j)) if base_i is not None else None
    if base_cell is not None:
        for (i, jj), cell in cells.items():
            if jj == j and i != base_i:
                cell.delta = cell.value - base_cell.value
    candidates = [
        i
        for i, e in enumerate(entries)
        if e.role == "system" and (i, j) in cells and not math.isnan(cells[(i, j)].value)
    ]
    if not candidates:
        return
    sign = -1.0 if column.lower_is_better else 1.0
    best = max(candidates, key=lambda i: sign * cells[(i, j)].value)
    cells[(best, j)].best = True
    others = [i for i in range(len(entries)) if i != best and (i, j) in cells]
    best_tracks, best_values = track_values[(best, j)]
    pvalues = []
    for i in others:
        tracks, values = track_values[(i, j)]
        x, y = stats.paired_values(best_tracks, best_values, tracks, values)
        pvalues.append(stats.wilcoxon_p(x, y))
    adjusted = stats.holm(pvalues) if correction == "holm" else np.asarray(pvalues, dtype=np.float64)
    for i, p, q in zip(others, pvalues, adjusted, strict=True):
        cell = cells[(i, j)]
        cell.p, cell.p_adjusted = p, float(q)
        cell.tied = bool(not math.isnan(q) and q >= alpha)


def _sorted(
    entries: list[Entry], cells: dict[tuple[int, int], Cell], columns: list[Column]
) -> tuple[list[Entry], dict[tuple[int, int], Cell]]:
    """Baselines, oracles, then systems from best to worst in the first column (no value: last)."""

    def key(i: int) -> tuple[int, int, float]:
        role = ROLE_ORDER[entries[i].role]
        if entries[i].role != "system" or not columns:
            return role, 0, float(i)
        cell = cells.get((i, 0))
        if cell is None or math.isnan(cell.value):
            return role, 1, float(i)
        return role, 0, cell.value if columns[0].lower_is_better else -cell.value

    order = sorted(range(len(entries)), key=key)
    position = {old: new for new, old in enumerate(order)}
    return [entries[i] for i in order], {(position[i], j): c for (i, j), c in cells.items()}
