"""The rows of a leaderboard: runs grouped into systems, baselines, and what distinguishes them.

A *system* is a trained model: the runs whose stored configs are equal once the seeds and the keys that
only name the run's own folder (``paths.*``, ``hydra.*``, any value holding ``paths.output_dir``) are left
out. Its seed runs are averaged per track (``seeds="mean"``: each track's value is the mean of the seed
runs' values, so the system keeps one value per track and the paired tests stay paired by track), or each
seed run is a row of its own (``seeds="separate"``).

The input baseline (``mixture`` / ``input``, named in ``summary.json``) and oracles (systems named
``oracle...``) are scored in every run on the same tracks: each is one row, averaged per track over the
runs that have it. ``diversity`` (a stochastic model's samples scored against each other, not against the
references) is not a row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from musicbench.evaluation.systems import DIVERSITY, MODEL
from musicbench.leaderboard.load import Run

Role = Literal["baseline", "oracle", "system"]
SeedMode = Literal["mean", "separate"]
ROLE_ORDER = {"baseline": 0, "oracle": 1, "system": 2}
# Config keys that describe where and how a run ran, not which model it is.
_RUN_LOCAL_PREFIXES = ("paths.", "hydra.")
_RUN_LOCAL_KEYS = frozenset({"run_id", "task_name", "threads"})


@dataclass
class Entry:
    """One row of the leaderboard.

    Attributes:
        label: the row's name (the run name, ``/<system>`` for a model's other systems such as ``best_of_k``).
        role: ``baseline`` (the input baseline), ``oracle`` or ``system``.
        system: the system name inside the runs' results (``model``, ``mixture``, ``best_of_k``).
        runs: the runs pooled into the row.
        config: the run config that identifies the row (seeds and run-local keys left out).
        scores: columns ``track, source, metric, value``: one value per track (the mean over ``runs``).
        spread: for a baseline or oracle pooled from several runs, the largest difference between two runs'
            values of one track, source and metric (0 when the runs agree, as they do on the same data).
    """

    label: str
    role: Role
    system: str
    runs: list[Run]
    config: dict[str, Any] = field(default_factory=dict)
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    spread: float = 0.0

    @property
    def seeds(self) -> list[Any]:
        """The seeds of the pooled runs (those that record one), numbers first in increasing order."""
        seeds = [r.seed for r in self.runs if r.seed is not None]
        return sorted(seeds, key=lambda s: (0, s, "") if isinstance(s, int | float) else (1, 0, str(s)))


def identity_config(run: Run) -> dict[str, Any]:
    """The keys of ``run.config`` that identify the model: without the seeds (``seed`` and every ``*.seed``
    equal to it) and without the run-local keys (``paths.*``, ``hydra.*``, ``run_id``, ``task_name``,
    ``threads``, values holding the run folder's path; the same under ``eval.`` for an ``mb-eval`` run)."""
    config = run.config
    seed = config.get("seed")
    output_dir = config.get("paths.output_dir")
    out = {}
    for key, value in config.items():
        own = key.removeprefix("eval.")  # an mb-eval run's own keys (load.py) are run-local alike
        if own.startswith(_RUN_LOCAL_PREFIXES) or own in _RUN_LOCAL_KEYS:
            continue
        if key == "seed" or (key.endswith(".seed") and value == seed):
            continue
        if output_dir and isinstance(value, str) and str(output_dir) in value:
            continue
        out[key] = value
    return out


def group_entries(
    runs: Sequence[Run], seeds: SeedMode = "mean", oracles: Iterable[str] = ("oracle",)
) -> list[Entry]:
    """The leaderboard rows of ``runs``: baselines first, then oracles, then systems in run order.

    ``oracles``: system names (case-insensitive prefixes) treated as oracles.
    """
    prefixes = tuple(o.lower() for o in oracles)
    groups: dict[tuple[Any, ...], Entry] = {}
    key: tuple[Any, ...]
    for run in runs:
        identity = identity_config(run)
        frozen = json.dumps(identity, sort_keys=True, default=str)
        for system in run.scores["system"].unique():
            if system == DIVERSITY:
                continue
            role: Role
            if system == run.input_baseline:
                role, key, label = "baseline", ("baseline", system), system
            elif system.lower().startswith(prefixes):
                role, key, label = "oracle", ("oracle", system), system
            else:
                role = "system"
                label = run.name if system == MODEL or run.kind == "museval" else f"{run.name}/{system}"
                key = ("system", run.kind, run.name, system, frozen)
                if seeds == "separate":
                    key += (str(run.path),)
                    if run.seed is not None:
                        label += f" (seed {run.seed})"
            entry = groups.setdefault(
                key, Entry(label, role, system, [], identity if role == "system" else {})
            )
            entry.runs.append(run)
    entries = sorted(groups.values(), key=lambda e: ROLE_ORDER[e.role])
    for entry in entries:
        parts = [r.scores[r.scores["system"] == entry.system] for r in entry.runs]
        pooled = pd.concat(parts, ignore_index=True)
        grouped = pooled.groupby(["track", "source", "metric"], sort=True, as_index=False)["value"]
        entry.scores = grouped.mean()
        if entry.role != "system" and len(entry.runs) > 1:
            ranges = grouped.agg(lambda v: v.max() - v.min())["value"]
            entry.spread = float(ranges.max()) if len(ranges) else 0.0
    _unique_labels(entries)
    return entries


def _unique_labels(entries: list[Entry]) -> None:
    """Two rows with one label (one experiment name, different configs): add the first run's folder name."""
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.label] = counts.get(e.label, 0) + 1
    for e in entries:
        if counts[e.label] > 1:
            e.label = f"{e.label} [{e.runs[0].path.name}]"


def config_differences(entries: Sequence[Entry]) -> list[str]:
    """The config keys whose values differ between the system rows (a key one row lacks counts as
    different), in the order they first appear. Left out as implied: ``name`` (the rows' labels), and
    under a node whose ``_target_`` differs (``model.net._target_``: a U-Net vs an Open-Unmix network), a
    key only some rows have (a class's own parameter) whose value is the same in all rows of one class:
    the class says it. Keys all rows have, or that differ between rows of one class (the noise size of
    two GANs next to a BLSTM), stay."""
    systems = [e for e in entries if e.role == "system" and e.config]
    if len(systems) < 2:
        return []
    keys = list(dict.fromkeys(k for e in systems for k in e.config))
    missing = object()

    def dump(config: dict[str, Any], key: str) -> str:
        return json.dumps(config.get(key, missing), sort_keys=True, default=str)

    differ = [k for k in keys if len({dump(e.config, k) for e in systems}) > 1]
    classes = {k.removesuffix("_target_") for k in differ if k.endswith("._target_")}

    def implied(key: str) -> bool:
        if key == "name":
            return True
        if all(key in e.config for e in systems):
            return False
        for node in (n for n in classes if key.startswith(n) and key != f"{n}_target_"):
            values: dict[str, set[str]] = {}  # per class at the node: the key's values
            for e in systems:
                values.setdefault(dump(e.config, f"{node}_target_"), set()).add(dump(e.config, key))
            if all(len(v) == 1 for v in values.values()):
                return True  # one value per class: the class says it
        return False

    return [k for k in differ if not implied(k)]


def format_value(value: Any) -> str:
    """A config value as a command-line override writes it (``0.002``, ``[a, b]``, ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)
