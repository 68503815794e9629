"""The local cluster of scripts/slurm-local, as the slurm tests bring it up from `make test`."""

from __future__ import annotations

import os
import subprocess

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]


@pytest.mark.slurm
def test_the_node_has_the_cpus_this_process_may_use(slurm_cluster):
    """`make test` runs with OMP_NUM_THREADS=1, which plain `nproc` obeys: the node must still offer all
    CPUs, or a 2-task job (DDP under srun) waits forever for a second one."""
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%c %T"], capture_output=True, text=True, check=True)
    cpus, state = out.stdout.split()
    assert int(cpus) == len(os.sched_getaffinity(0)), out.stdout
    assert state in ("idle", "mixed", "allocated"), out.stdout
