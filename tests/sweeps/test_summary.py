"""The sweep summary: the best trial, the CSV columns, the grid's parameters from override lines."""

import csv
import io
import json
import math

from musicbench.sweeps.summary import (
    COMPLETE,
    FAIL,
    TrialRow,
    best_row,
    error_line,
    params_of,
    trials_csv,
    write_summary,
)


def _rows() -> list[TrialRow]:
    return [
        TrialRow(number=0, state=COMPLETE, value=1.5, params={"lr": 1e-3}, run_dir="a"),
        TrialRow(
            number=1, state=FAIL, params={"lr": 1e-2, "depth": 4}, error="data.batch_size must be positive"
        ),
        TrialRow(number=2, state=COMPLETE, value=math.nan, params={"lr": 3e-4}),
        TrialRow(number=3, state=COMPLETE, value=0.5, params={"lr": 3e-4, "depth": 5}, run_dir="b"),
    ]


def test_best_row_follows_the_mode_and_skips_failed_and_nan():
    rows = _rows()
    assert best_row(rows, "max").number == 0
    assert best_row(rows, "min").number == 3
    assert best_row([rows[1], rows[2]], "max") is None


def test_trials_csv_has_one_column_per_parameter():
    table = list(csv.DictReader(io.StringIO(trials_csv(_rows()))))
    assert list(table[0]) == ["number", "state", "value", "wall_time_s", "run_dir", "lr", "depth", "error"]
    assert [r["depth"] for r in table] == ["", "4", "", "5"]
    assert table[1]["error"] == "data.batch_size must be positive" and table[1]["value"] == ""


def test_write_summary_counts_states(tmp_path):
    rows = _rows()
    write_summary(tmp_path, rows, sweeper="grid", metric="val/sdr", mode="max", best=best_row(rows, "max"))
    summary = json.loads((tmp_path / "sweep_summary.json").read_text())
    assert summary["counts"] == {COMPLETE: 3, FAIL: 1} and summary["best"]["number"] == 0
    assert [t["number"] for t in summary["trials"]] == [0, 1, 2, 3]
    assert (tmp_path / "trials.csv").read_text() == trials_csv(rows)


def test_params_of_types_the_swept_values():
    lines = [
        "model.optimizer.lr=1e-3",
        "model.net.base_channels=16",
        "debug=tiny",
        "model.complex_output=true",
    ]
    keys = ["model.optimizer.lr", "model.net.base_channels", "model.complex_output"]
    assert params_of(lines, keys) == {
        "model.optimizer.lr": 1e-3,
        "model.net.base_channels": 16,
        "model.complex_output": True,
    }


def test_error_line_of_a_job_failure_is_the_jobs_own_exception():
    from submitit.core.utils import FailedJobError

    trace = (
        "Job (task=0) failed during processing with trace:\n----------------------\n"
        'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n    f()\n'
        "ValueError: model.net.depth=9 is too deep for 3-s chunks\n"
    )
    assert error_line(FailedJobError(trace)) == (
        "FailedJobError: ValueError: model.net.depth=9 is too deep for 3-s chunks"
    )
    assert error_line(RuntimeError("first\nsecond")) == "RuntimeError: first"
    assert error_line(KeyError()) == "KeyError"
