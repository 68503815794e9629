"""The one ``rich`` progress bar layout used across musicbench (dataset generation, evaluation)."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_bar(enabled: bool, label: str | None = None) -> Progress:
    """A ``rich`` progress bar: ``[label] description  bar  M/N  elapsed  eta remaining``.

    Use it as a context manager (``with progress_bar(...) as bar: task = bar.add_task(...)``). When
    ``enabled`` is false the bar is created disabled, so the same calls are no-ops on the terminal.
    ``label``, if given, is a fixed text shown before each task's description.
    """
    columns: list[ProgressColumn] = []
    if label is not None:
        columns.append(TextColumn(label.replace("{", "{{").replace("}", "}}"), markup=False))
    columns += [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    return Progress(*columns, disable=not enabled, transient=False)
