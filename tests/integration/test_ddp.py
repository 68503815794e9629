"""Integration: multi-process DDP on CPU (``trainer=ddp_cpu``, gloo) gives the validation metrics of one
process, and only global rank 0 writes the run folder.

Each run is a subprocess (Lightning starts the other processes by running the command again), with its
own free ``MASTER_PORT`` (tests may run in parallel) and one thread per process: float reductions are
split per thread, so one process and two agree to the last bit only with the same thread count.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
VALIDATE = Path(__file__).with_name("ddp_validate.py")
METRICS = ("val/sdr", "val/loss", "val/sdr/soprano", "val/sdr/alto", "val/sdr/tenor", "val/sdr/bass")


def _env(tmp_path: Path) -> dict[str, str]:
    with socket.socket() as s:  # a free port for this test's process group
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}


def _validate(tmp_path: Path, name: str, *overrides: str) -> tuple[dict, list[int]]:
    """Run ``ddp_validate.py``: (rank 0's metrics.json, the validation batches of each rank)."""
    out = tmp_path / name
    out.mkdir()
    cmd = [sys.executable, str(VALIDATE), str(out), *overrides]
    proc = subprocess.run(cmd, env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    batches = [json.loads(p.read_text())["batches"] for p in sorted(out.glob("rank*.json"))]
    return json.loads((out / "metrics.json").read_text()), batches


@pytest.mark.parametrize(
    ("segment_seconds", "eval_batch_size", "items"),
    [
        (1.3, 1, 3),  # odd: Lightning's sampler would pad rank 1 with a repeat of item 0
        (1.0, 2, 4),  # batches of 2: the ranks batch other items together than one process does
    ],
)
def test_validation_on_two_processes_matches_one(
    tmp_path, tiny_chorales_root, segment_seconds, eval_batch_size, items
):
    """The same weights validated by one process (trainer=cpu) and by two (trainer=ddp_cpu) log the
    same val/sdr, val/loss and per-source SDR, although the ranks see unequal numbers of items."""
    common = [
        "debug=tiny",
        f"paths.chorales_root={tiny_chorales_root}",
        f"data.valid_segment_seconds={segment_seconds}",
        f"data.eval_batch_size={eval_batch_size}",
    ]
    one, one_batches = _validate(tmp_path, "one", *common, "trainer=cpu")
    two, two_batches = _validate(tmp_path, "two", *common, "trainer=ddp_cpu", "trainer.devices=2")
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert one["items"] == two["items"] == items
    # Every item validated once: rank r takes items r, r + 2, ... (no padding).
    assert one_batches == [-(-items // eval_batch_size)]
    assert two_batches == [-(-((items + 1) // 2) // eval_batch_size), -(-(items // 2) // eval_batch_size)]
    for key in METRICS:
        assert two["metrics"][key] == pytest.approx(one["metrics"][key], rel=1e-6, abs=1e-7), key


def _tree(run: Path) -> set[str]:
    return {
        p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file() and p.parent.name != "results"
    }


def test_mb_train_on_two_processes(tmp_path, tiny_chorales_root):
    """``mb-train trainer=ddp_cpu``: two processes train in one run folder; rank 0 alone writes the config,
    data identity, logs, checkpoints and the test stage's results (once); the val/sdr logged at the last
    epoch is what one process computes for the last checkpoint's weights."""
    out = tmp_path / "outputs"
    args = [
        "debug=tiny",
        "trainer=ddp_cpu",
        "trainer.devices=2",  # debug=tiny pins one device
        "callbacks.progress_bar=null",
        "evaluator=global_sdr",  # a quick test stage
        "evaluator.progress=false",
        f"paths.chorales_root={tiny_chorales_root}",
        f"paths.output_root={out}",
    ]
    proc = subprocess.run(
        [BIN / "mb-train", *args],
        env=_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting with 2 processes" in proc.stderr + proc.stdout
    (run,) = (out / "train" / "default").iterdir()  # both ranks used one run folder
    files = _tree(run)
    (best,) = [f for f in files if f.startswith("checkpoints/epoch")]
    assert files == {
        ".hydra/config.yaml",
        ".hydra/hydra.yaml",
        ".hydra/overrides.yaml",
        "config.yaml",
        "data.json",
        "csv/metrics.csv",
        "checkpoints/last.ckpt",
        best,
        "summary.json",
        "scores.csv",
        "train.log",  # rank 0's log
        "train_ddp_process_1.log",  # rank 1's log: the one file it writes
    }
    summary = json.loads((run / "summary.json").read_text())
    assert len(list((run / "results").glob("*.json"))) == len(summary["tracks"]) == 2
    # The test stage ran once, in rank 0.
    assert (run / "train.log").read_text().count("results written to") == 1
    rank1_log = (run / "train_ddp_process_1.log").read_text()
    assert "evaluating" not in rank1_log and "testing" not in rank1_log
    # Batch size per process: 8 items per epoch / (4 per batch x 2 processes) = 1 step per epoch, 2 epochs.
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert ckpt["global_step"] == 2
    # The val/sdr the two processes logged for the last epoch (rank 0's CSV), against one process
    # validating the weights that epoch ended with.
    rows = [r for r in csv.DictReader((run / "csv" / "metrics.csv").open()) if r["val/sdr"]]
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    one, _ = _validate(
        tmp_path,
        "check",
        "debug=tiny",
        "trainer=cpu",
        f"paths.chorales_root={tiny_chorales_root}",
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
    )
    for key in ("val/sdr", "val/loss"):
        assert float(rows[-1][key]) == pytest.approx(one["metrics"][key], rel=1e-6, abs=1e-7), key


def test_multirun_refuses_a_trainer_that_starts_processes(tmp_path, tiny_chorales_root):
    """Under -m, Lightning's launcher would re-run the whole sweep in every extra process: one error line."""
    args = [
        "-m",
        "debug=tiny",
        "trainer=ddp_cpu",
        "trainer.devices=2",
        "seed=1,2",
        f"paths.chorales_root={tiny_chorales_root}",
        f"paths.output_root={tmp_path / 'outputs'}",
    ]
    proc = subprocess.run(
        [BIN / "mb-train", *args],
        env=_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "error: trainer.devices=2 in a multirun (-m)" in proc.stderr
    assert not list((tmp_path / "outputs").rglob("*.ckpt"))


def test_processes_started_by_slurm_share_one_run_folder(tmp_path, tiny_chorales_root):
    """As ``srun`` starts them (ntasks-per-node = trainer.devices): two mb-train processes with SLURM's
    variables join one process group (Lightning starts none) and find the same run folder from the same
    command line; the test stage runs once, in rank 0 (``.hydra`` is left to rank 0 by ``mb_rank_zero``,
    tests/utils/test_config.py)."""
    out = tmp_path / "outputs"
    args = [
        "debug=tiny",
        "trainer=ddp_cpu",
        "trainer.devices=2",
        "callbacks.progress_bar=null",
        "evaluator=global_sdr",
        "evaluator.progress=false",
        f"paths.chorales_root={tiny_chorales_root}",
        f"paths.output_root={out}",
    ]
    env = _env(tmp_path)
    slurm = {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1", "SLURM_NODEID": "0"}
    slurm |= {"SLURM_JOB_NAME": "musicbench", "SLURM_JOB_ID": "4242", "SLURM_NODELIST": "127.0.0.1"}
    procs = [
        subprocess.Popen(
            [BIN / "mb-train", *args],
            env={**env, **slurm, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in logs[1]
    (run,) = (out / "train" / "default").iterdir()
    files = _tree(run)
    assert {f for f in files if f.startswith(".hydra/")} == {
        ".hydra/config.yaml",
        ".hydra/hydra.yaml",
        ".hydra/overrides.yaml",
    }
    assert {"config.yaml", "data.json", "summary.json", "scores.csv", "csv/metrics.csv"} <= files
    # Both processes log into the job's log (one job name under srun); the test stage ran once, in rank 0.
    assert "results written to" in logs[0] and "results written to" not in logs[1]
    assert (run / "train.log").read_text().count("results written to") == 1
