"""The expected failures of ``mb-leaderboard``: each names the path, filter or metric at fault."""

from __future__ import annotations

from musicbench.errors import UserError


class LeaderboardError(UserError, ValueError):
    """Run folders that cannot be put in one table (mixed tasks or datasets, bad arguments)."""


class NoRunsError(LeaderboardError, FileNotFoundError):
    """A path or glob matches no run folder, or the filters leave none."""


class MissingSummaryError(LeaderboardError, FileNotFoundError):
    """A run folder has no ``summary.json`` (an evaluation not finished, or shards not merged)."""


class MissingResultsError(LeaderboardError, FileNotFoundError):
    """A run folder has a ``summary.json`` but not the per-track ``results/<track>.json`` it lists."""


class MissingMetricError(LeaderboardError, KeyError):
    """A metric or source asked for is in none of the runs."""

    def __str__(self) -> str:  # KeyError quotes its message
        return str(self.args[0]) if self.args else ""
