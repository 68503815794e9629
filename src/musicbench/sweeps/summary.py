"""The summary of a sweep: one row per trial, the best trial, written into the sweep folder.

Both sweepers write the same files (the schema is in docs/architecture.md, "Results schema"):

- ``sweep_summary.json``: what was optimized, the counts per state, the best trial and every trial;
- ``trials.csv``: one row per trial, one column per swept parameter (for spreadsheets).

The Optuna sweeper (:mod:`musicbench.sweeps.optuna`) builds the rows from its study; Hydra's basic
sweeper (a grid, ``mb-train -m``) gets them from :class:`SweepSummary`, a Hydra callback that records each
job as it ends (``trial.json`` in the job's run folder) and collects the records when the sweep ends.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from musicbench.errors import user_message
from musicbench.utils.files import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SUMMARY_FILE = "sweep_summary.json"
TRIALS_FILE = "trials.csv"
# What a job of a sweep leaves in its run folder: its job number, state, value and wall time.
TRIAL_FILE = "trial.json"
# The states of a trial (Optuna's names; a grid job is COMPLETE or FAIL).
COMPLETE, FAIL, RUNNING = "COMPLETE", "FAIL", "RUNNING"
# The Optuna sweeper writes its summary from its study; the callback leaves it alone.
OPTUNA_SWEEPER_TARGET = "hydra_plugins.musicbench_sweepers.optuna_sweeper.ResumableOptunaSweeper"


@dataclass
class TrialRow:
    """One trial of a sweep (a row of ``trials.csv``, an item of ``sweep_summary.json``'s ``trials``).

    ``params``: the swept parameters (config key -> value); ``overrides``: every command-line override
    of the job (the run folder's name is their signature); ``run_dir``: the run folder, relative to the
    sweep folder when it is inside it; ``value``: the objective (``optimized_metric``), ``None`` when the
    trial failed or is running; ``error``: a failed trial's one-line error.
    """

    number: int
    state: str
    value: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    run_dir: str | None = None
    wall_time_s: float | None = None
    error: str | None = None


def relative_run_dir(run_dir: str | os.PathLike | None, sweep_dir: str | os.PathLike) -> str | None:
    """``run_dir`` relative to the sweep folder when inside it (the summary moves with the folder)."""
    if run_dir is None:
        return None
    try:
        return Path(run_dir).resolve().relative_to(Path(sweep_dir).resolve()).as_posix()
    except ValueError:
        return str(run_dir)


def error_line(exc: BaseException) -> str:
    """The one-line message of a failed trial: a user error's message, else the exception's first line;
    for an error that carries a job's traceback (submitit's ``FailedJobError``: "Job (task=0) failed during
    processing with trace: ..."), the job's own exception, the traceback's last line."""
    message = user_message(exc)
    if message is not None:
        return message
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if any(line.startswith("Traceback") for line in lines[1:]):
        last = next((x for x in reversed(lines) if not x.startswith((" ", "\t", "-"))), lines[-1])
        return f"{type(exc).__name__}: {last.strip()}"
    return f"{type(exc).__name__}: {lines[0]}"


def best_row(rows: Iterable[TrialRow], mode: str) -> TrialRow | None:
    """The complete trial with the best finite value (``mode``: ``max`` or ``min``; the first on ties)."""
    done = [r for r in rows if r.state == COMPLETE and r.value is not None and math.isfinite(r.value)]
    if not done:
        return None
    sign = -1.0 if mode == "max" else 1.0
    return min(done, key=lambda r: (sign * float(r.value or 0.0), r.number))


def write_summary(
    sweep_dir: str | os.PathLike,
    rows: Sequence[TrialRow],
    *,
    sweeper: str,
    metric: str | None,
    mode: str,
    best: TrialRow | None,
    n_trials: int | None = None,
    study: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``sweep_summary.json`` and ``trials.csv`` into ``sweep_dir`` (atomically); returns the summary.

    ``sweeper``: ``"optuna"`` or ``"grid"``; ``metric``/``mode``: the objective and its direction;
    ``best``: the best trial (the study's for Optuna); ``n_trials``: the trials asked for;
    ``study``: Optuna's study name and storage.
    """
    rows = sorted(rows, key=lambda r: r.number)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    summary = {
        "schema_version": SCHEMA_VERSION,
        "sweeper": sweeper,
        "study": dict(study) if study else None,
        "metric": metric,
        "mode": mode,
        "n_trials": n_trials,
        "counts": counts,
        "best": asdict(best) if best is not None else None,
        "trials": [asdict(r) for r in rows],
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    sweep_dir = Path(sweep_dir)
    write_json_atomic(sweep_dir / SUMMARY_FILE, summary)
    write_text_atomic(sweep_dir / TRIALS_FILE, trials_csv(rows))
    return summary


def _param_keys(rows: Sequence[TrialRow]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r.params))


def trials_csv(rows: Sequence[TrialRow]) -> str:
    """``trials.csv``: number, state, value, wall_time_s, run_dir, one column per parameter, error."""
    keys = _param_keys(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["number", "state", "value", "wall_time_s", "run_dir", *keys, "error"])
    for r in rows:
        writer.writerow(
            [
                r.number,
                r.state,
                "" if r.value is None else repr(r.value),
                "" if r.wall_time_s is None else f"{r.wall_time_s:.1f}",
                r.run_dir or "",
                *("" if r.params.get(k) is None else r.params[k] for k in keys),
                r.error or "",
            ]
        )
    return out.getvalue()


def trials_table(rows: Sequence[TrialRow], metric: str | None, best: TrialRow | None) -> Table:
    """A rich table of the trials (the best one marked ``*``)."""
    keys = _param_keys(rows)
    metric = metric or "value"  # (a task without optimized_metric, e.g. mb-eval -m)
    table = Table(title=f"sweep: {len(rows)} trials, objective {metric} (* best)")
    for name in ["#", "state", metric, *keys, "wall s", "run folder"]:
        justify: Literal["left", "right"] = "left" if name in ("state", "run folder") else "right"
        table.add_column(escape(name), justify=justify, overflow="fold")
    for r in sorted(rows, key=lambda r: r.number):
        mark = "*" if best is not None and r.number == best.number else ""
        value = r.error or "" if r.value is None else f"{r.value:.4g}"
        table.add_row(
            f"{r.number}{mark}",
            r.state,
            escape(value),
            *(escape(_fmt(r.params.get(k))) for k in keys),
            "" if r.wall_time_s is None else f"{r.wall_time_s:.1f}",
            escape(r.run_dir or ""),
        )
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_summary(
    rows: Sequence[TrialRow], metric: str | None, best: TrialRow | None, sweep_dir: Path
) -> None:
    """Print the trials table and where the summary files are."""
    console = Console(width=max(Console().width, 160))  # 80 columns when not a terminal: too narrow
    console.print(trials_table(rows, metric, best))
    if best is not None:
        console.print(f"best: trial {best.number}, {metric} = {best.value:.4g}, {best.run_dir}")
    console.print(f"summary: {sweep_dir / SUMMARY_FILE}, {sweep_dir / TRIALS_FILE}")


def read_trial_record(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The ``trial.json`` a job of a sweep left in its run folder, if any."""
    path = Path(run_dir) / TRIAL_FILE
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def swept_keys(config: DictConfig) -> list[str]:
    """The keys a grid sweeps: ``hydra.sweeper.params`` and the command-line overrides with several values."""
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    keys = [str(k) for k in params]
    parser = OverridesParser.create()
    for override in parser.parse_overrides(list(OmegaConf.select(config, "hydra.overrides.task") or [])):
        if override.is_sweep_override():
            keys.append(override.get_key_element())
    return list(dict.fromkeys(keys))


def params_of(overrides: Sequence[str], keys: Sequence[str]) -> dict[str, Any]:
    """The values of ``keys`` among a job's override lines, typed as Hydra parses them."""
    parser = OverridesParser.create()
    values = {}
    for override in parser.parse_overrides(list(overrides)):
        key = override.get_key_element()
        if key in keys and not override.is_sweep_override():
            value = override.value()
            values[key] = value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
    return {k: values[k] for k in keys if k in values}


class SweepSummary(Callback):
    """Hydra callback (``hydra.callbacks.sweep_summary``): the summary files of a sweep of any sweeper.

    Each job writes ``trial.json`` into its run folder when it ends (in the job's process, whatever the
    launcher); when the sweep ends, the rows of this sweep's jobs are collected from the run folders into
    ``sweep_summary.json`` and ``trials.csv`` (also refreshed after each job the sweep's own process
    runs, so that a sweep that stops early still leaves them). The Optuna sweeper writes its own, from
    its study.
    """

    def __init__(self) -> None:
        self._sweep_id: str | None = None
        self._pid: int | None = None
        self._started: float | None = None
        self._run_dirs: list[str] = []

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Jobs carry this id (the callback travels with remote launchers' jobs) and the collection at the
        # end keeps only records with it: a sweep folder holds the run folders of earlier sweeps too.
        self._sweep_id = f"{os.getpid()}-{time.time_ns()}"
        self._pid = os.getpid()
        self._run_dirs = []

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._started = time.perf_counter()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if self._sweep_id is None:  # a single run (no sweep)
            return
        run_dir = str(config.hydra.runtime.output_dir)
        ok = job_return.status == JobStatus.COMPLETED
        value = job_return._return_value if ok else None
        record = {
            "sweep_id": self._sweep_id,
            "job_num": int(config.hydra.job.num),
            "state": COMPLETE if ok else FAIL,
            "value": float(value) if isinstance(value, (int, float)) else None,
            "overrides": list(job_return.overrides or []),
            "wall_time_s": None if self._started is None else round(time.perf_counter() - self._started, 3),
            "error": None if ok else error_line(job_return._return_value),
        }
        write_json_atomic(Path(run_dir) / TRIAL_FILE, record)
        if os.getpid() == self._pid:
            self._run_dirs.append(run_dir)
            if not _is_optuna(config):
                self._write(config, quiet=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not _is_optuna(config):
            self._write(config, quiet=False)

    def _write(self, config: DictConfig, quiet: bool) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        # Run folders this process saw, plus those of remote jobs (found by this sweep's id).
        candidates = dict.fromkeys(
            [*self._run_dirs, *(str(p.parent) for p in sweep_dir.glob(f"*/{TRIAL_FILE}"))]
        )
        keys = swept_keys(config)
        rows = []
        for run_dir in candidates:
            record = read_trial_record(run_dir)
            if record is None or record.get("sweep_id") != self._sweep_id:
                continue
            rows.append(
                TrialRow(
                    number=int(record["job_num"]),
                    state=str(record["state"]),
                    value=record.get("value"),
                    params=params_of(record.get("overrides", []), keys),
                    overrides=list(record.get("overrides", [])),
                    run_dir=relative_run_dir(run_dir, sweep_dir),
                    wall_time_s=record.get("wall_time_s"),
                    error=record.get("error"),
                )
            )
        if not rows:
            return
        metric = OmegaConf.select(config, "optimized_metric")
        mode = str(OmegaConf.select(config, "optimized_mode") or "max")
        best = best_row(rows, mode)
        write_summary(
            sweep_dir, rows, sweeper="grid", metric=metric, mode=mode, best=best, n_trials=len(rows)
        )
        if not quiet:
            print_summary(rows, metric, best, sweep_dir)


def _is_optuna(config: DictConfig) -> bool:
    return OmegaConf.select(config, "hydra.sweeper._target_") == OPTUNA_SWEEPER_TARGET
