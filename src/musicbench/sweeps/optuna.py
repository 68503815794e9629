"""Hydra's Optuna sweeper with a study that survives interruption (``hydra/sweeper=musicbench_optuna``).

What it changes in the plugin's ``OptunaSweeperImpl`` (hydra-optuna-sweeper):

- ``n_trials`` is the size of the study, not the number of trials to add: a rerun of the same command
  loads the study (SQLite file in the sweep folder, stable ``study_name``) and runs only the trials still
  missing, so an interrupted sweep continues where it stopped and a finished one runs nothing.
- Trials left RUNNING by a killed sweep are run again under their own number and parameters: the same
  overrides give the same run folder, where the training resumes from ``last.ckpt``.
- A trial whose run raises is recorded FAIL with its one-line error and the sweep goes on, until more
  than ``max_failure_rate`` x ``n_trials`` trials have failed.
- The summary files (:mod:`musicbench.sweeps.summary`) are refreshed after every batch of trials.
- Search spaces use Optuna's current distributions (the plugin builds the deprecated ones).

One sweep process per study: a lock file in the sweep folder refuses a second one, so a trial found
RUNNING when the sweep starts can only be left over from an interrupted sweep.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import hydra
import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_optuna_sweeper._impl import (  # type: ignore[import-untyped]
    OptunaSweeperImpl,
    create_params_from_overrides,
)
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, Trial, TrialState

from musicbench.errors import ConfigError, SweepError, reported_errors, user_message
from musicbench.sweeps.summary import (
    COMPLETE,
    TrialRow,
    error_line,
    print_summary,
    read_trial_record,
    relative_run_dir,
    write_summary,
)

log = logging.getLogger(__name__)

# Trial user attributes this sweeper sets (besides the plugin's fixed parameters).
RUN_DIR, WALL_TIME, ERROR, OVERRIDES = "run_dir", "wall_time_s", "error", "overrides"
# Study user attribute: the sweep's command-line overrides that decide what a trial computes.
COMMAND = "command_overrides"
LOCK_FILE = ".optuna.lock"


def modern_distribution(distribution: BaseDistribution) -> BaseDistribution:
    """The plugin's deprecated distribution classes as ``FloatDistribution`` / ``IntDistribution``.

    (``LogUniformDistribution`` and the others subclass those two since Optuna 3, with the same fields.)
    """
    if isinstance(distribution, FloatDistribution):
        return FloatDistribution(
            distribution.low, distribution.high, log=distribution.log, step=distribution.step
        )
    if isinstance(distribution, IntDistribution):
        return IntDistribution(
            distribution.low, distribution.high, log=distribution.log, step=distribution.step
        )
    return distribution


def search_space(arguments: Sequence[str]) -> tuple[dict[str, BaseDistribution], dict[str, Any]]:
    """The distributions and fixed values of the sweep's override lines (``key=interval(...)`` etc.)."""
    with warnings.catch_warnings():
        # The plugin builds Optuna's deprecated distribution classes; they are converted below.
        warnings.filterwarnings(
            "ignore", category=FutureWarning, message=r".*Distribution has been deprecated"
        )
        distributions, fixed = create_params_from_overrides(list(arguments))
    space = {k: modern_distribution(d) for k, d in distributions.items() if k not in fixed}
    # Hydra's range(start, stop, step) excludes stop; the plugin's distribution includes it.
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        key, dist = override.get_key_element(), space.get(override.get_key_element())
        if override.is_range_sweep() and isinstance(dist, (IntDistribution, FloatDistribution)):
            last = max(float(v) for v in override.sweep_iterator())  # type: ignore[arg-type]
            if isinstance(dist, IntDistribution):
                space[key] = IntDistribution(dist.low, int(last), step=dist.step)
            else:
                space[key] = FloatDistribution(dist.low, last, step=dist.step)
    return space, fixed


class ResumableOptunaSweeperImpl(OptunaSweeperImpl):
    """``OptunaSweeperImpl`` whose study survives interruption; see the module docstring.

    ``max_failure_rate``: the share of ``n_trials`` that may fail before the sweep stops (0: the first
    failure stops it).
    """

    def __init__(self, *args: Any, max_failure_rate: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 <= float(max_failure_rate) <= 1.0:
            raise ConfigError(
                f"hydra.sweeper.max_failure_rate={max_failure_rate}: expected a value in [0, 1]"
            )
        self.max_failure_rate = float(max_failure_rate)

    def sweep(self, arguments: list[str]) -> None:
        with reported_errors():  # a refused study or too many failures: one `error:` line
            self._sweep(arguments)

    def _sweep(self, arguments: list[str]) -> None:
        assert self.config is not None and self.launcher is not None
        self._process_searchspace_config()
        distributions, fixed = search_space([*self._parse_sweeper_params_config(), *arguments])
        directions = self._get_directions()
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)  # the SQLite file goes there
        with _sweep_lock(sweep_dir, self.study_name):
            study = optuna.create_study(
                study_name=self.study_name,
                storage=self.storage,
                sampler=optuna.samplers.RandomSampler(),  # replaced below, once the study's size is known
                directions=directions,
                load_if_exists=True,
            )
            sampler, n_trials = self._sampler(distributions, len(study.trials))
            study.sampler = sampler
            self._check_command(study)
            log.info(
                "study %s (%s), %s, directions %s: %d of %d trials finished",
                study.study_name,
                self.storage,
                type(sampler).__name__,
                directions,
                _n_finished(study),
                n_trials,
            )
            self._run(study, distributions, fixed, n_trials)
            self._summarize(study, n_trials, final=True)

    def _sampler(self, distributions: dict[str, BaseDistribution], n_existing: int) -> tuple[Any, int]:
        """The sampler, and n_trials (capped by the size of a grid).

        A seeded sampler continuing a study is seeded with ``seed + n_existing``: with its first seed it
        would propose the trials it proposed before the interruption again.
        """
        sampler, n_trials = self.sampler, int(self.n_trials)
        if isinstance(sampler, DictConfig):  # (the sweeper's config does not instantiate it: _recursive_)
            spec = cast(dict[str, Any], OmegaConf.to_container(sampler, resolve=True))
            if n_existing and spec.get("seed") is not None:
                spec["seed"] = int(spec["seed"]) + n_existing
            sampler = hydra.utils.instantiate(spec)
        if isinstance(sampler, functools.partial) and sampler.func is optuna.samplers.GridSampler:
            grid = {name: self._to_grid_sampler_choices(d) for name, d in distributions.items()}
            sampler = sampler(grid)
            n_trials = min(n_trials, math.prod(len(v) for v in grid.values()))
        return sampler, n_trials

    def _to_grid_sampler_choices(self, distribution: BaseDistribution) -> list[Any]:
        """The values of a discrete parameter, for Optuna's GridSampler (``choice`` or ``range``)."""
        if isinstance(distribution, CategoricalDistribution):
            return list(distribution.choices)
        d = distribution
        if isinstance(d, (IntDistribution, FloatDistribution)) and d.step is not None and not d.log:
            return [d.low + i * d.step for i in range(int(round((d.high - d.low) / d.step)) + 1)]
        raise ConfigError(f"the grid sampler takes choice(...) or range(...) parameters, not {distribution}")

    def _run(
        self,
        study: optuna.Study,
        distributions: dict[str, BaseDistribution],
        fixed: dict[str, Any],
        n_trials: int,
    ) -> None:
        # Trials a killed sweep left RUNNING: their parameters are in the study; run them again first.
        stale = [
            Trial(study, t._trial_id) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        ]
        self._check_failures(study, n_trials)  # a study that failed too often stops before running more
        if stale:
            log.info(
                "re-running trial(s) %s, left running by an interrupted sweep", [t.number for t in stale]
            )
        while (to_go := n_trials - _n_finished(study)) > 0:
            size = min(self.n_jobs, to_go)
            trials, stale = stale[:size], stale[size:]
            trials += [study.ask() for _ in range(size - len(trials))]
            overrides = self._configure_trials(trials, distributions, fixed)
            for trial, trial_overrides in zip(trials, overrides, strict=True):
                trial.set_user_attr(OVERRIDES, list(trial_overrides))
            try:
                returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            except Exception as exc:  # composing the jobs failed (e.g. a parameter key the config lacks)
                for trial in trials:
                    trial.set_user_attr(ERROR, error_line(exc))
                    _tell(study, trial, state=TrialState.FAIL)
                raise
            self.job_idx += len(returns)
            for trial, ret in zip(trials, returns, strict=True):
                self._tell(study, trial, ret)
            self._summarize(study, n_trials, final=False)
            self._check_failures(study, n_trials)
        for trial in stale:  # n_trials was lowered below what the study already holds
            trial.set_user_attr(ERROR, "interrupted; not run again (the study has n_trials finished trials)")
            _tell(study, trial, state=TrialState.FAIL)

    def _tell(self, study: optuna.Study, trial: Trial, ret: JobReturn) -> None:
        run_dir = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") if ret.hydra_cfg else None
        if run_dir is not None:
            trial.set_user_attr(RUN_DIR, str(run_dir))
            record = read_trial_record(run_dir)  # SweepSummary times each job in its own process
            if record is not None and record.get("wall_time_s") is not None:
                trial.set_user_attr(WALL_TIME, float(record["wall_time_s"]))
        value = ret._return_value
        if ret.status == JobStatus.COMPLETED:
            try:
                values = [float(value)] if len(study.directions) == 1 else [float(v) for v in value]
            except (TypeError, ValueError):
                message = f"the run returned {value!r}, not a value of optimized_metric"
            else:
                if all(math.isfinite(v) for v in values):
                    _tell(study, trial, values=values)
                    return
                message = f"the objective is not finite: {values}"
        else:
            message = error_line(value)
            if user_message(value) is None:  # a bug: its traceback
                log.warning("trial %d raised", trial.number, exc_info=value)
        log.warning("trial %d failed: %s", trial.number, message)
        trial.set_user_attr(ERROR, message)
        _tell(study, trial, state=TrialState.FAIL)

    def _check_failures(self, study: optuna.Study, n_trials: int) -> None:
        failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if len(failed) > self.max_failure_rate * n_trials:
            last = failed[-1].user_attrs.get(ERROR, "")
            raise SweepError(
                f"{len(failed)} of {n_trials} trials failed, more than hydra.sweeper.max_failure_rate="
                f"{self.max_failure_rate} allows (last: trial {failed[-1].number}: {last}); see "
                f"{Path(self.config.hydra.sweep.dir) / 'trials.csv'}. Fix them or raise the rate, then run the "
                "same command again: finished trials are kept"
            )

    def _check_command(self, study: optuna.Study) -> None:
        """Record the sweep's command-line overrides in a new study; refuse a study made by another command
        (its trials computed something else, in other run folders)."""
        command = _command_overrides(self.config)
        recorded = study.user_attrs.get(COMMAND)
        if recorded is None:
            study.set_user_attr(COMMAND, command)
        elif list(recorded) != command:
            raise ConfigError(
                f"study {study.study_name!r} in {self.storage} was made by a sweep with the overrides {recorded}, "
                f"not {command}: run that command to continue it, or name a new study "
                "(hydra.sweeper.study_name=...)"
            )

    def _summarize(self, study: optuna.Study, n_trials: int, final: bool) -> None:
        sweep_dir = Path(self.config.hydra.sweep.dir)
        rows = [_row(t, sweep_dir) for t in study.get_trials(deepcopy=False)]
        best = None
        if len(study.directions) == 1 and any(
            t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)
        ):
            best = next(r for r in rows if r.number == study.best_trial.number)
        metric = OmegaConf.select(self.config, "optimized_metric")
        mode = str(OmegaConf.select(self.config, "optimized_mode") or "max")
        write_summary(
            sweep_dir,
            rows,
            sweeper="optuna",
            metric=metric,
            mode=mode,
            best=best,
            n_trials=n_trials,
            study={"name": study.study_name, "storage": str(self.storage)},
        )
        if final:
            print_summary(rows, metric, best, sweep_dir)


def _row(trial: FrozenTrial, sweep_dir: Path) -> TrialRow:
    attrs = trial.user_attrs
    wall = attrs.get(WALL_TIME)
    if wall is None and trial.datetime_start and trial.datetime_complete:
        wall = (trial.datetime_complete - trial.datetime_start).total_seconds()
    return TrialRow(
        number=trial.number,
        state=trial.state.name,
        value=trial.value if trial.state.name == COMPLETE and len(trial.values or []) == 1 else None,
        params=dict(trial.params),
        overrides=list(attrs.get(OVERRIDES, [])),
        run_dir=relative_run_dir(attrs.get(RUN_DIR), sweep_dir),
        wall_time_s=None if wall is None else round(float(wall), 3),
        error=attrs.get(ERROR),
    )


def _tell(study: optuna.Study, trial: Trial, **kwargs: Any) -> None:
    try:
        study.tell(trial, **kwargs)
    except RuntimeError as exc:
        # Optuna's GridSampler stops the study once every combination has been asked, which only works
        # inside Study.optimize; the trial is recorded all the same.
        if "`Study.stop` is supposed to be invoked" not in str(exc):
            raise


def _n_finished(study: optuna.Study) -> int:
    return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))


def _command_overrides(config: DictConfig) -> list[str]:
    """The sweep's command-line overrides, less the keys left out of run folder names (paths, devices...)."""
    exclude = set(OmegaConf.select(config, "hydra.job.config.override_dirname.exclude_keys") or [])
    parser = OverridesParser.create()
    lines = list(OmegaConf.select(config, "hydra.overrides.task") or [])
    return sorted(str(o.input_line) for o in parser.parse_overrides(lines) if o.key_or_group not in exclude)


@contextlib.contextmanager
def _sweep_lock(sweep_dir: Path, study_name: str | None) -> Iterator[None]:
    """Hold an exclusive lock on the sweep folder for the study (released by the OS if the process dies)."""
    path = sweep_dir / LOCK_FILE
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepError(
                f"another sweep is running in {sweep_dir} (it holds {path}): wait for it to end; a sweep "
                f"of study {study_name!r} runs in one process"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
