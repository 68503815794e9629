"""A sharded evaluation in one command: ``mb-eval -m ckpt_path=RUN shard=0/4,1/4,2/4,3/4``.

The shards of one evaluation share its run folder (``shard`` is not part of the folder's signature), so
a multirun over ``shard`` values, with any launcher (one process after the other, or one SLURM job per
shard with ``hydra/launcher=slurm``), fills one folder with per-track results. :class:`MergeShards`, a
Hydra callback of ``mb-eval`` (``conf/hydra/eval.yaml``), then runs the merge: once every shard job has
succeeded (Hydra stops a multirun at the first failed job), it runs the same command with the shard
override replaced by ``merge=true``, through the same launcher, so the merge is one more job where the
shards ran.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from musicbench.evaluation.runner import parse_shard

log = logging.getLogger(__name__)

# A command-line override of the shard key: shard=..., +shard=..., ++shard=...
SHARD_ARG = re.compile(r"^\+{0,2}shard=")


def shard_values(arg: str) -> list[str]:
    """The values a ``shard=...`` command-line override sweeps over (``shard=0/2,1/2`` -> ``["0/2",
    "1/2"]``; a single value: a list of one)."""
    override = OverridesParser.create().parse_overrides([arg])[0]
    if override.is_sweep_override():
        return list(override.sweep_string_iterator())
    return [override.get_value_element_as_str()]


def merge_command(argv: Sequence[str]) -> list[str] | None:
    """The ``mb-eval`` arguments that merge the shards the command line ``argv`` evaluates: ``argv`` with
    its ``shard=...`` override replaced by ``merge=true``. ``None`` when ``argv`` sweeps no shards, or
    not all ``K/N`` for one ``N`` (the merge would fail: the missing shards are run with other commands)."""
    args = [a for a in argv if SHARD_ARG.match(a)]
    if len(args) != 1:
        return None
    shards = [parse_shard(v) for v in shard_values(args[0])]
    counts = {n for _, n in shards}
    if len(counts) != 1 or {k for k, _ in shards} != set(range(counts.pop())):
        log.info(
            "%s does not cover every shard K/N of one N: run `mb-eval ... merge=true` when the others are done",
            args[0],
        )
        return None
    return [a if not SHARD_ARG.match(a) else "merge=true" for a in argv]


class MergeShards(Callback):
    """Hydra callback: after a multirun of ``mb-eval`` over every shard ``K/N``, merge them
    (``merge=true``: ``summary.json``, ``scores.csv``) with the same command and launcher.

    It runs in the process that started the multirun, once every shard job has returned without error.
    A failed merge ends that process with its exit status (Hydra would turn an exception of a callback
    into a warning).
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        args = merge_command(sys.argv[1:])
        if args is None:
            return
        cmd = [sys.executable, "-m", "musicbench.evaluate", *args]
        log.info("every shard is done; merging: mb-eval %s", " ".join(args))
        code = subprocess.run(cmd, check=False).returncode
        if code != 0:
            sys.stderr.write(
                f"error: the merge of the shards failed (exit status {code}): mb-eval {' '.join(args)}\n"
            )
            raise SystemExit(code)
