"""What every Cadenza recipe shares: systems (demixers), items, the resumable enhance / evaluate stages,
merging the results of every shard, and the demix cache.

A recipe subclasses :class:`Recipe` and defines its items (``system`` x song or scene x listener), how an
item is enhanced and scored, the digests that decide when an item's result is still valid, and its
``scores.csv``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musicbench.errors import ConfigError
from musicbench.evaluation.jobs import matching_results, run_jobs, safe_name
from musicbench.evaluation.runner import select_shard
from musicbench.pipelines.cadenza.demixers import Demixer, StemSource
from musicbench.pipelines.cadenza.report import summarise
from musicbench.utils.provenance import code_version


class Recipe(ABC):
    """The base of the Cadenza recipes (see the module docstring).

    Args:
        demixers: ``{system: demixer}``; each system is enhanced and scored.
        progress: progress bars with ETA.

    Subclasses set ``recipe`` and ``unit`` (names in ``summary.json``) and implement the abstract methods.
    """

    recipe = ""
    unit = "items"

    def __init__(self, demixers: Mapping[str, Demixer], progress: bool = True) -> None:
        if not demixers:
            raise ConfigError("pipeline.demixers is empty: configure at least one system (e.g. oracle)")
        bad = [s for s in demixers if not s or safe_name(s) != s]
        if bad:
            raise ConfigError(f"pipeline.demixers: system names {bad} must be non-empty and contain no '/'")
        self.demixers = dict(demixers)
        self.progress = progress
        self._demixed: tuple[str, str, dict[str, np.ndarray]] | None = None

    # --- what a recipe defines -------------------------------------------------------------------------
    @abstractmethod
    def all_items(self) -> list[Any]:
        """Every item (objects with ``name`` and ``system``), in a fixed order."""
        ...

    @abstractmethod
    def enhance_digests(self, items: Sequence[Any]) -> dict[str, str]:
        """``{item name: digest of what its enhancement depends on}``."""
        ...

    @abstractmethod
    def enhance_item(self, out_dir: Path, item: Any, digest: str) -> dict[str, Any]:
        """Write one item's enhanced signals; returns its record (with ``item`` and ``digest``)."""
        ...

    @abstractmethod
    def evaluate_digests(self, out_dir: Path, items: Sequence[Any]) -> dict[str, str]:
        """``{item name: digest of what its scores depend on}`` (including its enhanced files)."""
        ...

    @abstractmethod
    def evaluate_item(self, out_dir: Path, item: Any, digest: str) -> dict[str, Any]:
        """Score one item; returns its result (``item``, ``system``, ``group``, ``digest``, ``score``...)."""
        ...

    @abstractmethod
    def write_scores(self, results: Sequence[Mapping[str, Any]], path: Path) -> None:
        """Write one system's ``scores.csv`` in the challenge's columns."""
        ...

    @abstractmethod
    def summary_meta(self) -> dict[str, Any]:
        """What ``summary.json`` records besides the scores (data, split, settings)."""
        ...

    # --- shared ----------------------------------------------------------------------------------------
    def items(self, shard: tuple[int, int] | None = None) -> list[Any]:
        """Every item, or a shard's share ``(k, n)``: items ``k, k + n, ...``."""
        every = self.all_items()
        return every if shard is None else select_shard(every, *shard)

    def demix(
        self, system: str, data: StemSource, song: Any, key: str, stems: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        """``demixers[system](data, song, stems)``, kept for the next item of the same system and song
        (``key``): items are ordered so that one song's listeners follow each other."""
        if self._demixed is None or self._demixed[:2] != (system, key):
            self._demixed = (system, key, self.demixers[system](data, song, stems))
        return self._demixed[2]

    def enhance(self, out_dir: str | Path, shard: tuple[int, int] | None = None) -> dict[str, dict[str, Any]]:
        """Enhance every item (of the shard); a rerun skips the items whose record matches."""
        out_dir = Path(out_dir)
        items = self.items(shard)
        return run_jobs(
            items,
            lambda i: i.name,
            self.enhance_digests(items),
            lambda i, d: self.enhance_item(out_dir, i, d),
            out_dir / "enhance",
            progress=self.progress,
            label="enhance",
            key="item",
        )

    def evaluate(
        self, out_dir: str | Path, shard: tuple[int, int] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Score every item (of the shard) from its enhanced signals (:meth:`merge` writes the tables);
        a rerun skips the items whose result matches."""
        out_dir = Path(out_dir)
        items = self.items(shard)
        return run_jobs(
            items,
            lambda i: i.name,
            self.evaluate_digests(out_dir, items),
            lambda i, d: self.evaluate_item(out_dir, i, d),
            out_dir / "results",
            progress=self.progress,
            label="evaluate" if shard is None else f"evaluate shard {shard[0]}/{shard[1]}",
            key="item",
        )

    def merge(self, out_dir: str | Path) -> dict[str, Any]:
        """Write ``<system>/scores.csv`` and ``summary.json`` from the results of every shard; returns the
        summary. Raises ConfigError naming the items whose results are missing or stale."""
        out_dir = Path(out_dir)
        items = self.items()
        done = matching_results(out_dir / "results", self.evaluate_digests(out_dir, items), key="item")
        missing = [i.name for i in items if i.name not in done]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise ConfigError(
                f"cannot merge {out_dir}: {len(missing)} of {len(items)} items have no results for these "
                f"settings and enhanced signals: {shown}. Run the enhance and evaluate stages (all shards) first."
            )
        results = [done[i.name] for i in items]
        for system in self.demixers:
            self.write_scores([r for r in results if r["system"] == system], out_dir / system / "scores.csv")
        return summarise(
            results,
            out_dir / "summary.json",
            recipe=self.recipe,
            unit=self.unit,
            **self.summary_meta(),
            code_version=code_version(),
        )

    def package(self, out_dir: str | Path, system: str, team_id: str) -> Path:
        """The submission zip of one system; recipes without a submission format refuse."""
        raise ConfigError(f"the {self.recipe} recipe has no submission format: drop 'package' from stages")
