"""Resumable per-item work: one result file per item, written atomically as the item finishes.

The evaluation runner (one item per track) and the pipelines (one item per song and listener) share it:
a rerun skips the items whose result on disk carries the expected digest, so work killed at any point
resumes where it stopped, and an item whose inputs or settings changed is done again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from musicbench.evaluation.results import load_results
from musicbench.utils.files import write_json_atomic
from musicbench.utils.progress import progress_bar

Item = TypeVar("Item")


def safe_name(name: str) -> str:
    """``name`` as a file name: path separators become ``_``."""
    return name.replace("/", "_").replace("\\", "_")


def matching_results(
    results_dir: str | Path, digests: Mapping[str, str], key: str = "track"
) -> dict[str, dict[str, Any]]:
    """The results in ``results_dir`` whose ``digest`` is the one expected for their item (``{name: digest}``;
    a result's name is its ``key`` field)."""
    return {
        n: r
        for n, r in load_results(results_dir, key).items()
        if n in digests and r.get("digest") == digests[n]
    }


def run_jobs(
    items: Sequence[Item],
    name: Callable[[Item], str],
    digests: Mapping[str, str],
    work: Callable[[Item, str], dict[str, Any]],
    results_dir: str | Path,
    progress: bool = True,
    label: str = "evaluate",
    key: str = "track",
) -> dict[str, dict[str, Any]]:
    """Run ``work(item, digest)`` for every item without a matching result; returns ``{name: result}``.

    Args:
        items: the items to do (a shard's, already selected).
        name: an item's unique name; its result is ``results_dir/<safe_name(name)>.json``.
        digests: ``{name: digest}`` of every item: a result on disk is reused only when its ``digest`` key
            equals this (``work`` must store it in the result it returns).
        work: computes one item's result: a JSON-serialisable dict holding the item's name under ``key``
            and the digest it was given under ``"digest"``; an exception stops the run, leaving the finished
            items' results in place.
        results_dir: where results go (created).
        progress: show a progress bar (items done / total, elapsed, ETA).
        label: the progress bar's label; the current item's name is shown after it.
        key: the field of a result that holds its item's name.
    """
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    done = matching_results(results_dir, {name(i): digests[name(i)] for i in items}, key)
    todo = [i for i in items if name(i) not in done]
    with progress_bar(progress) as bar:
        task = bar.add_task(label, total=len(items), completed=len(items) - len(todo))
        for item in todo:
            key = name(item)
            bar.update(task, description=f"{label} {key}")
            done[key] = work(item, digests[key])
            write_json_atomic(results_dir / f"{safe_name(key)}.json", done[key])
            bar.advance(task)
    return {name(i): done[name(i)] for i in items}
