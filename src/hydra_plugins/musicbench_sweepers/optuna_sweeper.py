"""The Hydra plugin class of ``hydra/sweeper=musicbench_optuna``: a thin shell around
:class:`musicbench.sweeps.optuna.ResumableOptunaSweeperImpl`.

Hydra instantiates a sweeper only from a class in the ``hydra_plugins`` package that its plugin scan has
registered; the scan imports this module in every Hydra application, so optuna is imported only when
the sweeper is built.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class ResumableOptunaSweeper(Sweeper):
    """Hydra's Optuna sweeper with a resumable study (arguments: ``conf/hydra/sweeper/musicbench_optuna.yaml``)."""

    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: Any | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        params: DictConfig | None,
        max_failure_rate: float = 0.0,
        search_space: DictConfig | None = None,
        custom_search_space: str | None = None,
    ) -> None:
        from musicbench.sweeps.optuna import ResumableOptunaSweeperImpl

        self.sweeper = ResumableOptunaSweeperImpl(
            sampler,
            direction,
            storage,
            study_name,
            n_trials,
            n_jobs,
            search_space,
            custom_search_space,
            params,
            max_failure_rate=max_failure_rate,
        )

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
