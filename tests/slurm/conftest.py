"""The local SLURM cluster of the ``slurm`` tests (``scripts/slurm-local``).

The tests run in one pytest-xdist group (``xdist_group("slurm")``), so one worker brings the cluster up,
once per session, and takes down only a cluster it started itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slurm-local"
COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo")


@dataclass(frozen=True)
class SlurmCluster:
    """A running cluster: its ``slurm.conf`` (``$SLURM_CONF``) and its job completion log."""

    conf: Path

    @property
    def jobcomp_log(self) -> Path:
        """The file slurmctld appends a line to for every finished job (``JobCompLoc``)."""
        match = re.search(r"^JobCompLoc=(.+)$", self.conf.read_text(), re.M)
        assert match, f"no JobCompLoc in {self.conf}"
        return Path(match.group(1).strip())

    def wait_finished(self, keep, count: int, timeout: float = 60.0) -> list[dict[str, str]]:
        """The finished jobs for which ``keep(record)`` is true, once there are ``count`` of them: slurmctld
        writes a record shortly after the job's result reached the submitting process."""
        deadline = time.monotonic() + timeout
        while True:
            records = [r for r in self.finished_jobs() if keep(r)]
            if len(records) >= count or time.monotonic() > deadline:
                return records
            time.sleep(0.2)

    def finished_jobs(self) -> list[dict[str, str]]:
        """The job completion log: one ``{field: value}`` per finished job."""
        if not self.jobcomp_log.exists():
            return []
        return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in self.jobcomp_log.read_text().splitlines()]


def _script(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="session")
def slurm_cluster():
    """The local single-node cluster, up; ``SLURM_CONF`` points to it in this process (and so in the CLIs
    the tests start). Started here if it is not running, and then stopped at the end of the session."""
    missing = [c for c in COMMANDS if shutil.which(c) is None]
    if missing and os.getuid() != 0:
        pytest.skip(
            f"SLURM is not installed ({', '.join(missing)} missing): 'sudo apt-get install slurm-wlm munge'"
        )
    started = False
    if _script("status").returncode != 0:
        up = _script("up", timeout=900)  # the first time as root: apt-get install slurm-wlm munge
        assert up.returncode == 0, f"scripts/slurm-local up failed:\n{up.stdout}\n{up.stderr}"
        started = True
    status = _script("status")
    assert status.returncode == 0, status.stdout + status.stderr
    conf = re.search(r"export SLURM_CONF=(\S+)", status.stdout)
    assert conf, status.stdout
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf.group(1)
    try:
        yield SlurmCluster(Path(conf.group(1)))
    finally:
        # Another pytest process (a second `make test`, or a worker when the group was split) may still
        # have a job on the cluster this worker started: then leave it up.
        if started and not _jobs_queued():
            _script("down", timeout=120)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous


def _jobs_queued() -> bool:
    """Whether the cluster ($SLURM_CONF) has a job pending, running or completing; True when it does not
    answer (better a cluster left up than a job killed)."""
    try:
        out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return True
    return out.returncode != 0 or bool(out.stdout.strip())
