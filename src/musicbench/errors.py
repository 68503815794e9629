"""Errors a user can act on, and how the command-line tools report them.

An expected failure (bad data, a bad config value, a bad checkpoint, an output folder that cannot be
written) raises a :class:`UserError`. Its message names the file, key or value at fault and what to do;
``mb-train`` and ``mb-eval`` print it as one ``error: ...`` line and exit with status 1, without a
traceback. Anything else is a bug and keeps its traceback. ``HYDRA_FULL_ERROR=1`` shows the full
traceback of a user error too.

The classes also derive from the built-in type a caller would catch (``ValueError``,
``FileNotFoundError``, ``OSError``), so ``except ValueError`` keeps working where a site moves over.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def first_few(items: list[str], limit: int = 5) -> str:
    """``items`` joined with ``"; "`` for an error message: the first ``limit``, then how many more."""
    more = f"; and {len(items) - limit} more" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


class UserError(Exception):
    """An expected failure whose message says what is wrong and what to do; reported without traceback."""


class ConfigError(UserError, ValueError):
    """A config value is invalid; the message names the key (``data.batch_size``) and the value."""


class CheckpointError(UserError, ValueError):
    """A checkpoint cannot be used (unreadable, not written by ``mb-train``, incompatible)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint a config names does not exist."""


class OutputError(UserError, OSError):
    """An output (run folder, result, checkpoint) cannot be written."""


class SweepError(UserError):
    """A sweep cannot go on: too many failed trials, or another process runs the same study."""


FULL_ERROR_HINT = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."


class ReportedError(CompactHydraException):
    """A :class:`UserError` as Hydra reports it: its message only, then Hydra's hint about
    ``HYDRA_FULL_ERROR=1`` (the user error stays chained as the cause, for the full traceback)."""


# OSErrors about the machine rather than the code: the message (path + reason) is the whole story.
_ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.ENOTDIR}
# A DataLoader worker re-raises an exception with the worker's traceback in its message.
_WORKER_TRACEBACK = re.compile(r"^Caught \w+ in DataLoader worker process (\d+)\.\nOriginal Traceback", re.S)


def user_message(exc: BaseException) -> str | None:
    """The one-line message of an expected failure, or ``None`` for anything else (a bug).

    Looks through the wrappers the stack adds (Hydra's ``InstantiationException``, chained causes) for a
    :class:`UserError` or an ``OSError`` about the machine (permission, full disk, read-only file system).
    """
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, UserError):
            return _clean(str(node))
        if isinstance(node, OSError) and node.errno in _ENVIRONMENT_ERRNOS:
            where = f": {node.filename}" if node.filename else ""
            return f"{node.strerror or node}{where}"
        node = node.__cause__
    return None


def _clean(message: str) -> str:
    """A worker's error message without the worker's traceback (its last line is the message)."""
    match = _WORKER_TRACEBACK.match(message)
    if not match:
        return message
    last = message.rstrip().splitlines()[-1]
    return f"{last.split(': ', 1)[-1]} (in DataLoader worker {match.group(1)})"


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn an expected failure inside the block into a :class:`ReportedError` (``error: <message>``).

    Used inside the ``hydra.main`` task functions: Hydra then prints the message and its
    ``HYDRA_FULL_ERROR=1`` hint and exits with status 1, in a single run and in a sweep (whose
    launcher runs the other jobs, then reports the failed one). Other exceptions pass unchanged.
    """
    try:
        yield
    except Exception as exc:
        message = user_message(exc)
        if message is None:
            raise
        raise ReportedError(f"error: {message}") from exc


class CheckOutputWritable(Callback):
    """Hydra callback: stop before a job starts, with one line and status 1, when its run folder cannot be
    created or written.

    Hydra creates the folder inside its own job code, where an ``OSError`` comes with a traceback; this
    callback (``hydra.callbacks.output_writable`` in ``conf/hydra/default.yaml``) creates it first. Hydra
    turns an exception of a callback into a warning, so the callback exits itself (``SystemExit``);
    with ``HYDRA_FULL_ERROR=1`` it steps aside and Hydra's own error, with its traceback, follows.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir)

    @staticmethod
    def _check(folder: str) -> None:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            return
        path = Path(folder)
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):  # a unique name: shards may check at once
                pass
        except OSError as exc:
            sys.stderr.write(
                f"error: cannot write the run folder {path}: {exc.strerror or exc}. Set paths.output_root "
                f"(or $MB_OUTPUT_ROOT) to a writable folder\n{FULL_ERROR_HINT}\n"
            )
            raise SystemExit(1) from exc
