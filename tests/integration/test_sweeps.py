"""Integration: Optuna sweeps with an SQLite study that survive SIGKILL, record failed trials, and write the
same summary files as a grid sweep."""

from __future__ import annotations

import csv
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
# Trials of about a second: one training step, no sanity check, no test stage, one CPU thread.
FAST = [
    "debug=tiny",
    "test=false",
    "threads=1",
    "trainer.max_epochs=1",
    "trainer.num_sanity_val_steps=0",
    "data.samples_per_epoch=4",
    "data.valid_segment_seconds=1.0",
    "callbacks.progress_bar=null",
]
SUMMARY_KEYS = {
    "schema_version",
    "sweeper",
    "study",
    "metric",
    "mode",
    "n_trials",
    "counts",
    "best",
    "trials",
}
ROW_KEYS = {"number", "state", "value", "params", "overrides", "run_dir", "wall_time_s", "error"}
# A search preset of the tests (next to the shipped ones through --config-dir).
TINY_SEARCH = """# @package _global_
defaults:
  - override /hydra/sweeper: musicbench_optuna
hydra:
  mode: MULTIRUN
  sweeper:
    n_trials: 3
    params:
      model.optimizer.lr: tag(log, interval(1e-4, 1e-2))
{extra}
"""


def _mb_train(tmp_path: Path, chorales: Path, *args: str, config_dir: Path | None = None) -> list[str]:
    extra = ["--config-dir", str(config_dir)] if config_dir else []
    return [
        str(BIN / "mb-train"),
        *extra,
        *args,
        f"paths.chorales_root={chorales}",
        f"paths.output_root={tmp_path / 'out'}",
    ]


def _search_preset(tmp_path: Path, extra: str = "") -> Path:
    conf = tmp_path / "conf"
    (conf / "hparams_search").mkdir(parents=True, exist_ok=True)
    (conf / "hparams_search" / "tiny_optuna.yaml").write_text(TINY_SEARCH.format(extra=extra))
    return conf


def _run(cmd: list[str], cwd: Path, expect: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == expect, proc.stderr[-3000:]
    return proc


def _summary(sweep_dir: Path) -> dict:
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    for row in summary["trials"]:
        assert set(row) == ROW_KEYS
    with open(sweep_dir / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["number"]) for r in rows] == [t["number"] for t in summary["trials"]]
    assert [r["state"] for r in rows] == [t["state"] for t in summary["trials"]]
    return summary


def _study(sweep_dir: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


def test_optuna_sweep_runs_n_trials_and_summarizes_the_best(tmp_path, tiny_chorales_root):
    cmd = _mb_train(
        tmp_path, tiny_chorales_root, "hparams_search=unet_optuna", "hydra.sweeper.n_trials=3", *FAST
    )
    proc = _run(cmd, tmp_path)
    sweep_dir = tmp_path / "out" / "train" / "default"
    study = _study(sweep_dir, "default-unet_optuna")
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    # The search space is the preset's, in Optuna's current distribution classes.
    assert set(study.best_trial.params) == {
        "model.optimizer.lr",
        "model.net.base_channels",
        "model.net.depth",
        "model.net.kernel_size",
        "model.net.dropout",
    }
    assert (
        type(study.best_trial.distributions["model.optimizer.lr"]) is optuna.distributions.FloatDistribution
    )
    assert study.best_trial.distributions["model.optimizer.lr"].log

    summary = _summary(sweep_dir)
    assert summary["sweeper"] == "optuna" and summary["study"]["name"] == "default-unet_optuna"
    assert (summary["metric"], summary["mode"], summary["n_trials"]) == ("val/sdr", "max", 3)
    best = summary["best"]
    assert best["number"] == study.best_trial.number and best["value"] == study.best_value
    assert best["params"] == study.best_trial.params
    run = sweep_dir / best["run_dir"]
    # The run folder is the trial's: its config has the trial's learning rate, its metrics log the value.
    assert f"lr: {study.best_trial.params['model.optimizer.lr']}" in (run / "config.yaml").read_text()
    with open(run / "csv" / "metrics.csv", newline="") as f:
        logged = [float(r["val/sdr"]) for r in csv.DictReader(f) if r.get("val/sdr")]
    assert math.isclose(logged[-1], best["value"], rel_tol=1e-6)
    assert all(t["wall_time_s"] > 0 for t in summary["trials"])
    assert "best: trial" in proc.stdout and "val/sdr" in proc.stdout


def _mid_trial(sweep_dir: Path) -> bool:
    """A job has ended (its trial.json) and the next is training: a checkpoint, no trial.json yet.

    The jobs run one after the other and a trial is told COMPLETE right after its job ends, so the first
    trial is complete in the study by then and the second is running.
    """
    ended = {p.parent for p in sweep_dir.glob("*/trial.json")}
    training = {p.parents[1] for p in sweep_dir.glob("*/checkpoints/last.ckpt")} - ended
    return bool(ended) and bool(training)


def test_killed_sweep_continues_with_the_missing_trials(tmp_path, tiny_chorales_root):
    conf = _search_preset(tmp_path)
    # Trials of 3 epochs, so that the sweep can be killed in the middle of one (after its first checkpoint).
    args = [*FAST, "trainer.max_epochs=3"]
    cmd = _mb_train(tmp_path, tiny_chorales_root, "hparams_search=tiny_optuna", *args, config_dir=conf)
    sweep_dir = tmp_path / "out" / "train" / "default"
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if _mid_trial(sweep_dir):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the sweep ended before it could be killed mid-trial"
    study = _study(sweep_dir, "default-tiny_optuna")
    (killed,) = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    done_before = {t.number: t for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    assert done_before and len(done_before) < 3
    folders_before = {
        t.user_attrs["run_dir"]: {f: f.stat().st_mtime_ns for f in Path(t.user_attrs["run_dir"]).rglob("*")}
        for t in done_before.values()
    }

    rerun = _run(cmd, tmp_path)
    study = _study(sweep_dir, "default-tiny_optuna")
    trials = study.get_trials()
    # Exactly n_trials: the killed trial ran again under its own number and parameters; no extra trial.
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
    assert trials[killed.number].params == killed.params
    for number, before in done_before.items():  # finished trials are kept as they were
        assert trials[number].value == before.value and trials[number].params == before.params
    for folder, files in folders_before.items():  # ... and their run folders are not touched
        assert {f: f.stat().st_mtime_ns for f in Path(folder).rglob("*")} == files
    # The killed trial found its run folder and resumed from its checkpoint.
    killed_dir = trials[killed.number].user_attrs["run_dir"]
    assert f"Restored all states from the checkpoint at {killed_dir}" in rerun.stdout + rerun.stderr
    assert len(list(sweep_dir.glob("*/config.yaml"))) == 3  # one run folder per trial

    summary = _summary(sweep_dir)
    assert [t["number"] for t in summary["trials"]] == [0, 1, 2]
    assert summary["counts"] == {"COMPLETE": 3} and summary["best"]["number"] == study.best_trial.number
    assert summary["best"]["value"] == study.best_value


def test_failed_trial_is_recorded_and_the_sweep_goes_on(tmp_path, tiny_chorales_root):
    # data.batch_size=0 is refused by the datamodule (a config error): those trials fail, the others run.
    conf = _search_preset(tmp_path, extra="      data.batch_size: choice(0, 4)")
    args = ["hparams_search=tiny_optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.max_failure_rate=0.75"]
    proc = _run(_mb_train(tmp_path, tiny_chorales_root, *args, *FAST, config_dir=conf), tmp_path)
    sweep_dir = tmp_path / "out" / "train" / "default"
    trials = _study(sweep_dir, "default-tiny_optuna").get_trials()
    assert len(trials) == 4
    for t in trials:
        assert t.state.name == ("FAIL" if t.params["data.batch_size"] == 0 else "COMPLETE"), t
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert failed and len(failed) < 4, "the seed should give both outcomes"
    assert all("data.batch_size must be positive" in t.user_attrs["error"] for t in failed)
    assert f"trial {failed[0].number} failed: data.batch_size must be positive" in proc.stdout + proc.stderr
    summary = _summary(sweep_dir)
    assert summary["counts"] == {"COMPLETE": 4 - len(failed), "FAIL": len(failed)}
    assert summary["best"]["params"]["data.batch_size"] == 4
    assert all(t["value"] is None and t["error"] for t in summary["trials"] if t["state"] == "FAIL")

    # With max_failure_rate=0 the first failure stops the sweep, with one error line and exit status 1. The
    # sampler is seeded: a new study proposes the same trials, up to the first failed one.
    first_fail = min(t.number for t in failed)
    strict = [*args[:2], "hydra.sweeper.max_failure_rate=0", "hydra.sweeper.study_name=strict", *FAST]
    proc = _run(_mb_train(tmp_path, tiny_chorales_root, *strict, config_dir=conf), tmp_path, expect=1)
    assert "hydra.sweeper.max_failure_rate=0.0" in proc.stderr and "Traceback" not in proc.stderr
    stopped = _study(sweep_dir, "strict").get_trials()
    assert [t.params for t in stopped] == [t.params for t in trials[: first_fail + 1]]
    assert stopped[-1].state.name == "FAIL"


def test_grid_sweep_writes_the_same_summary(tmp_path, tiny_chorales_root):
    _run(_mb_train(tmp_path, tiny_chorales_root, "hparams_search=unet_lr", *FAST), tmp_path)
    sweep_dir = tmp_path / "out" / "train" / "default"
    summary = _summary(sweep_dir)
    assert summary["sweeper"] == "grid" and summary["study"] is None
    rows = summary["trials"]
    assert [r["number"] for r in rows] == [0, 1, 2, 3] and {r["state"] for r in rows} == {"COMPLETE"}
    assert {(r["params"]["model.optimizer.lr"], r["params"]["model.net.base_channels"]) for r in rows} == {
        (1e-3, 8),
        (1e-3, 16),
        (3e-4, 8),
        (3e-4, 16),
    }
    best = max(rows, key=lambda r: r["value"])
    assert summary["best"] == best
    for r in rows:  # each row's value is what its run logged last
        with open(sweep_dir / r["run_dir"] / "csv" / "metrics.csv", newline="") as f:
            logged = [float(x["val/sdr"]) for x in csv.DictReader(f) if x.get("val/sdr")]
        assert math.isclose(logged[-1], r["value"], rel_tol=1e-6)
