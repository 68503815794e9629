"""The Optuna sweeper's search space (current distribution classes) and the seed of a continued study."""

import warnings

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from musicbench.errors import ConfigError, SweepError
from musicbench.sweeps.optuna import ResumableOptunaSweeperImpl, _sweep_lock, search_space


def test_search_space_uses_current_distributions_without_warnings():
    lines = [
        "lr=tag(log, interval(1e-4, 1e-2))",
        "p=interval(0.0, 0.5)",
        "n=range(1, 5)",
        "q=range(0.0, 1.0, 0.25)",
        "w=choice(8, 16)",
        "x=3",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        distributions, fixed = search_space(lines)
    assert distributions == {
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
        "p": FloatDistribution(0.0, 0.5),
        "n": IntDistribution(1, 4),  # Hydra's range excludes its end
        "q": FloatDistribution(0.0, 0.75, step=0.25),
        "w": CategoricalDistribution([8, 16]),
    }
    assert all(
        type(d) in (FloatDistribution, IntDistribution, CategoricalDistribution)
        for d in distributions.values()
    )
    assert fixed == {"x": "3"}


def _first_proposal(sampler) -> float:
    study = optuna.create_study(sampler=sampler)
    return study.ask().suggest_float("x", 0.0, 1.0)


def test_a_continued_study_reseeds_its_sampler():
    sweeper = ResumableOptunaSweeperImpl(
        OmegaConf.create({"_target_": "optuna.samplers.TPESampler", "seed": 7}),
        "maximize",
        None,
        "s",
        4,
        1,
        None,
        None,
        None,
    )
    fresh, n_trials = sweeper._sampler({}, n_existing=0)
    continued, _ = sweeper._sampler({}, n_existing=3)
    assert n_trials == 4
    assert _first_proposal(fresh) == _first_proposal(optuna.samplers.TPESampler(seed=7))
    assert _first_proposal(continued) == _first_proposal(optuna.samplers.TPESampler(seed=10))
    assert _first_proposal(continued) != _first_proposal(optuna.samplers.TPESampler(seed=7))


def test_grid_sampler_runs_each_combination_once():
    sweeper = ResumableOptunaSweeperImpl(
        OmegaConf.create({"_target_": "optuna.samplers.GridSampler", "_partial_": True, "seed": 0}),
        "maximize",
        None,
        "s",
        100,
        1,
        None,
        None,
        None,
    )
    distributions, _ = search_space(["n=range(1, 4)", "w=choice(8, 16)"])
    sampler, n_trials = sweeper._sampler(distributions, n_existing=0)
    assert isinstance(sampler, optuna.samplers.GridSampler) and n_trials == 6
    assert sweeper._to_grid_sampler_choices(distributions["n"]) == [1, 2, 3]
    assert sweeper._to_grid_sampler_choices(search_space(["q=range(0.0, 1.0, 0.25)"])[0]["q"]) == [
        0.0,
        0.25,
        0.5,
        0.75,
    ]


def test_one_sweep_per_sweep_folder(tmp_path):
    with _sweep_lock(tmp_path, "s"):
        with pytest.raises(SweepError, match="another sweep is running"):
            with _sweep_lock(tmp_path, "s"):
                pass
    with _sweep_lock(tmp_path, "s"):  # released when the sweep ends
        pass


def test_a_study_is_continued_only_by_the_command_that_made_it():
    def sweeper_for(*task_overrides):
        sweeper = ResumableOptunaSweeperImpl(None, "maximize", None, "s", 4, 1, None, None, None)
        sweeper.config = OmegaConf.create(
            {
                "hydra": {
                    "overrides": {"task": list(task_overrides)},
                    "job": {"config": {"override_dirname": {"exclude_keys": ["paths.output_root"]}}},
                }
            }
        )
        return sweeper

    study = optuna.create_study()
    sweeper_for("hparams_search=unet_optuna", "debug=tiny")._check_command(study)
    # The same overrides in any order, or keys left out of run folder names: the same sweep.
    sweeper_for("debug=tiny", "hparams_search=unet_optuna", "paths.output_root=/x")._check_command(study)
    with pytest.raises(ConfigError, match=r"made by a sweep with the overrides .*hydra.sweeper.study_name"):
        sweeper_for("hparams_search=unet_optuna", "debug=tiny", "seed=1")._check_command(study)
