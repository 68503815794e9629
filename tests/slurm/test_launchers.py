"""Sweeps through the submitit launchers: SLURM jobs on the local cluster (``hydra/launcher=slurm``), local
processes (``hydra/launcher=local``), and a sharded evaluation whose merge runs once every shard is done."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate as hydra_instantiate

from musicbench.evaluate import evaluate
from musicbench.train import train
from musicbench.utils.config import CONFIG_DIR

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]
BIN = Path(sys.executable).parent
LRS = ("0.001", "0.0003")


def _train_overrides(root: Path) -> list[str]:
    # One thread per job: the two jobs of a sweep run side by side.
    return [
        "debug=tiny",
        "trainer.max_epochs=1",
        "threads=1",
        "callbacks.progress_bar=null",
        f"paths.chorales_root={root}",
    ]


def _run(args: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MB_OUTPUT_ROOT": str(cwd / "outputs")}
    try:
        proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{args[0]} did not end in {exc.timeout} s\n{_logs(cwd / 'outputs')}") from exc
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + _logs(cwd / "outputs")
    return proc


def _compose(name: str, overrides: list[str], hydra_config: bool = False):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=overrides, return_hydra_config=hydra_config)


def _train_sweep(launcher: str, root: Path, tmp_path: Path) -> Path:
    """``mb-train -m`` over two learning rates through ``launcher``; checks that each job wrote its summary
    into the run folder of the same command without -m (where a resubmitted job resumes); returns the
    sweep folder."""
    overrides = _train_overrides(root)
    _run(
        [
            BIN / "mb-train",
            "-m",
            f"hydra/launcher={launcher}",
            *overrides,
            f"model.optimizer.lr={','.join(LRS)}",
        ],
        tmp_path,
    )
    sweep = tmp_path / "outputs" / "train" / "default"
    runs = {p.parent.name for p in sweep.glob("*/summary.json")}
    single = {
        Path(_compose("train", [*overrides, f"model.optimizer.lr={lr}"], True).hydra.run.dir).name
        for lr in LRS
    }
    assert runs == single and len(runs) == 2
    return sweep


@pytest.mark.slurm
def test_train_sweep_runs_as_slurm_jobs(slurm_cluster, tiny_chorales_root, tmp_path):
    sweep = _train_sweep("slurm", tiny_chorales_root, tmp_path)
    # submitit's folder per job: <array job id>_<task id>; the controller logged both jobs as completed.
    jobs = sorted(p.name.split("_") for p in (sweep / ".submitit").glob("*_*") if p.is_dir())
    assert len(jobs) == 2 and jobs[0][0] == jobs[1][0]
    finished = {
        (r.get("ArrayJobId"), r.get("ArrayTaskId")): r
        for r in slurm_cluster.wait_finished(lambda r: r.get("WorkDir") == str(tmp_path), 2)
    }
    assert set(finished) == {tuple(j) for j in jobs}
    assert all(r["JobState"] == "COMPLETED" and r["Name"] == "train" for r in finished.values())


def test_train_sweep_runs_as_local_submitit_jobs(tiny_chorales_root, tmp_path):
    sweep = _train_sweep("local", tiny_chorales_root, tmp_path)
    # One process per job (its id names the folder), each with its pickled result.
    folders = [p for p in (sweep / ".submitit").iterdir() if p.is_dir() and p.name.isdigit()]
    assert len(folders) == 2
    assert all(list(p.glob("*_result.pkl")) for p in folders)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_chorales_root) -> Path:
    """A tiny trained model."""
    run = tmp_path_factory.mktemp("slurm_train") / "run"
    overrides = [*_train_overrides(tiny_chorales_root), "test=false", f"paths.output_dir={run}"]
    train(_compose("train", overrides))
    return run / "checkpoints" / "last.ckpt"


def _results(run_dir: Path) -> dict:
    out = {}
    for p in sorted((run_dir / "results").glob("*.json")):
        r = json.loads(p.read_text())
        r.pop("wall_time_s")
        out[p.name] = r
    return out


@pytest.mark.slurm
def test_sharded_evaluation_then_merge_job(slurm_cluster, checkpoint, tiny_chorales_root, tmp_path):
    common = [
        f"ckpt_path={checkpoint}",
        f"paths.chorales_root={tiny_chorales_root}",
        "+evaluator.progress=false",
        "threads=1",
    ]
    reference, _ = evaluate(_compose("eval", [*common, f"paths.output_dir={tmp_path / 'ref'}"]))

    _run([BIN / "mb-eval", "-m", "hydra/launcher=slurm", *common, "shard=0/2,1/2"], tmp_path)
    (run_dir,) = [p.parent for p in (tmp_path / "outputs" / "eval" / "default").glob("*/summary.json")]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tracks"] == reference["tracks"] and len(summary["tracks"]) == 2
    assert summary["systems"] == reference["systems"]
    assert _results(run_dir) == _results(tmp_path / "ref")

    # SLURM ran an array of the two shards, then the merge: a job that started when both had ended.
    arrays: dict[str, list[dict]] = {}
    for r in slurm_cluster.wait_finished(lambda r: r.get("WorkDir") == str(tmp_path), 3):
        # submitit submits a sweep of one job (the merge) as a plain job, not an array.
        arrays.setdefault(r.get("ArrayJobId", r["JobId"]), []).append(r)
    assert sorted(len(a) for a in arrays.values()) == [1, 2]
    (shards,) = [a for a in arrays.values() if len(a) == 2]
    (merge,) = [a[0] for a in arrays.values() if len(a) == 1]
    assert all(r["JobState"] == "COMPLETED" for r in [*shards, merge])
    assert merge["StartTime"] >= max(r["EndTime"] for r in shards)


def _logs(folder: Path, *first: Path) -> str:
    """The tails of ``first`` (mb-train's error stream) and of every job's and run's log under ``folder``:
    what a failed test shows."""
    files = [*first, *sorted(folder.rglob("*_log.*")), *sorted(folder.rglob("*.log"))]
    tails = [
        f"--- {p}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-25:])
        for p in files
        if p.is_file()
    ]
    # What the cluster was doing: a job waiting for CPUs another job holds, a node taken down.
    for cmd in (["squeue", "-a", "-o", "%i %j %T %R %M %C"], ["sinfo", "-N", "-o", "%N %T %C %E"]):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        tails.append(f"--- {' '.join(cmd)}\n{out.stdout}{out.stderr}")
    return "\n".join(tails)


def _wait_for(predicate, what: str, proc: subprocess.Popen, logs, timeout: float = 300.0):
    """Polls ``predicate`` until it is true; fails with ``logs()`` when mb-train ends first or time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"mb-train ended (status {proc.returncode}) before {what}\n{logs()}")
        time.sleep(0.2)
    raise AssertionError(f"no {what} after {timeout} s\n{logs()}")


def _max_step(run_dirs: list[Path]) -> int:
    steps = [
        int(line.split(",")[idx])
        for run in run_dirs
        if (run / "csv" / "metrics.csv").is_file()
        for header, *lines in [(run / "csv" / "metrics.csv").read_text().splitlines() or [""]]
        for idx in [header.split(",").index("step")]
        if "step" in header.split(",")
        for line in lines
        if line.split(",")[idx]
    ]
    return max(steps, default=-1)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_chorales_root) -> tuple[dict, dict]:
    """Final weights and test scores of the preemption test's training, run without interruption."""
    run = tmp_path_factory.mktemp("slurm_uninterrupted") / "run"
    train(
        _compose("train", [*_train_overrides(tiny_chorales_root), *PREEMPTED_RUN, f"paths.output_dir={run}"])
    )
    return _final_state(run)


def _final_state(run: Path) -> tuple[dict, dict]:
    weights = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "state_dict"
    ]
    return weights, json.loads((run / "summary.json").read_text())["systems"]


# 8 epochs of 2 batches: the job is stopped in the middle.
PREEMPTED_RUN = ["trainer.max_epochs=8"]


@pytest.mark.slurm
@pytest.mark.parametrize("how", ["signal"])
def test_a_preempted_job_resumes_and_ends_as_an_uninterrupted_run(
    how, slurm_cluster, uninterrupted, tiny_chorales_root, tmp_path
):
    """``signal``: SIGUSR2, what the launcher's jobs get before their time limit: the training writes
    last.ckpt, then submitit requeues the job. ``requeue``: ``scontrol requeue``, what a preemption does:
    SLURM sends SIGTERM (the training writes last.ckpt and exits) and queues the job again. Either way
    the job comes back, resumes in its run folder and ends bit for bit as the uninterrupted run."""
    overrides = [*_train_overrides(tiny_chorales_root), *PREEMPTED_RUN]
    env = {**os.environ, "MB_OUTPUT_ROOT": str(tmp_path / "outputs")}
    cmd = [BIN / "mb-train", "-m", "hydra/launcher=slurm", *overrides]
    # Its error stream to a file: submitit warns at every status poll, a pipe nobody reads would fill up.
    err = tmp_path / "mb-train.err"
    with err.open("w") as stderr:
        proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr)
    sweep = tmp_path / "outputs" / "train" / "default"

    def logs() -> str:
        return _logs(tmp_path / "outputs", err)

    try:
        _wait_for(lambda: _max_step([p.parent for p in sweep.glob("*/csv")]) >= 5, "step 5", proc, logs)
        (job,) = [p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]
        if how == "signal":
            subprocess.run(["scancel", "--signal=USR2", job], check=True)
        else:
            subprocess.run(["scontrol", "requeue", job], check=True)

        def pending():
            out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True)
            return out.stdout.strip() == "PENDING"

        _wait_for(pending, "requeued job", proc, logs, timeout=120)
        # SLURM holds a requeued job for two minutes: start it now, once the stopped instance's processes
        # (its srun, which ends by killing its job id) are gone, so that nothing of it can reach the new one.
        _wait_for(lambda: subprocess.run(["pgrep", "-x", "srun"], capture_output=True).returncode != 0,
                  "the stopped job's srun to exit", proc, logs, timeout=60)  # fmt: skip
        time.sleep(2)
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)

        def finished():
            # A resumed instance that was cancelled leaves mb-train waiting for good (the local cluster has
            # no accounting, so submitit never learns the state): fail now, with the logs, not in 10 min.
            states = [r["JobState"] for r in slurm_cluster.finished_jobs() if r["JobId"] == job]
            assert states[-1:] != ["CANCELLED"], f"job {job} was cancelled after its requeue\n{logs()}"
            return proc.poll() is not None

        _wait_for(finished, "the end of the resumed job", proc, logs, timeout=600)
        assert proc.wait(timeout=60) == 0, logs()
    finally:
        if proc.poll() is None:
            proc.kill()
            # The job outlives the command that submitted it: free its CPUs for the next tests.
            for folder in (sweep / ".submitit").glob("*"):
                if folder.name.isdigit():
                    subprocess.run(["scancel", folder.name], check=False)
    (run_dir,) = [p.parent for p in sweep.glob("*/summary.json")]
    log = (run_dir / "train.log").read_text()
    last = run_dir / "checkpoints" / "last.ckpt"
    assert "preempted at epoch" in log and f"resuming from {last}" in log
    if how == "signal":
        assert f"Requeued job {job}" in log  # by submitit, after the checkpoint
    weights, systems = _final_state(run_dir)
    ref_weights, ref_systems = uninterrupted
    assert weights.keys() == ref_weights.keys()
    assert all(torch.equal(weights[k], ref_weights[k]) for k in weights)
    assert systems == ref_systems
    states = [r["JobState"] for r in slurm_cluster.wait_finished(lambda r: r["JobId"] == job, 2)]
    assert states[-1] == "COMPLETED" and len(states) == 2  # stopped once, then completed


@pytest.mark.slurm
def test_a_two_task_slurm_job_trains_with_ddp(slurm_cluster, tiny_chorales_root, tmp_path):
    """``trainer=ddp_cpu`` through the SLURM launcher: one job of 2 tasks (srun starts both processes,
    Lightning takes their ranks from SLURM and starts none itself); one run folder, written by rank 0, whose
    logged val/sdr is what one process computes for the final weights."""
    _run(
        [
            BIN / "mb-train",
            "-m",
            "hydra/launcher=slurm",
            *_train_overrides(tiny_chorales_root),
            "trainer=ddp_cpu",
            "trainer.devices=2",  # debug=tiny pins one device
            "evaluator=global_sdr",  # a quick test stage
            "evaluator.progress=false",
        ],
        tmp_path,
    )
    sweep = tmp_path / "outputs" / "train" / "default"
    (run,) = [p.parent for p in sweep.glob("*/summary.json")]
    (job,) = [p.name for p in (sweep / ".submitit").iterdir() if p.is_dir() and p.name.isdigit()]
    (record,) = slurm_cluster.wait_finished(lambda r: r["JobId"] == job, 1)
    assert record["JobState"] == "COMPLETED" and record["ProcCnt"] == "2"  # 2 tasks of 1 CPU
    # Both tasks joined one process group of 2 (Lightning prints each rank as it joins).
    stderr = "".join(p.read_text() for p in (sweep / ".submitit" / job).glob("*_log.err"))
    assert "Initializing distributed: GLOBAL_RANK: 0, MEMBER: 1/2" in stderr
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in stderr
    # Each process has its own log; the test stage ran once, in rank 0.
    assert (run / "train.log").read_text().count("results written to") == 1
    assert "results written to" not in (run / "train_rank1.log").read_text()
    # 8 items per epoch / (4 per batch x 2 processes): 1 step per epoch.
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == 1
    logged = [r for r in csv.DictReader((run / "csv" / "metrics.csv").open()) if r["val/sdr"]][-1]
    model = hydra_instantiate(_compose("train", _train_overrides(tiny_chorales_root)).model)
    model.load_state_dict(state["state_dict"])
    one = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False).validate(
        model, datamodule=hydra_instantiate(_compose("train", _train_overrides(tiny_chorales_root)).data)
    )[0]
    assert float(logged["val/sdr"]) == pytest.approx(one["val/sdr"], rel=1e-6, abs=1e-7)
