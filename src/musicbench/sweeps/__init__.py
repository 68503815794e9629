"""Hyperparameter sweeps: a resumable Optuna sweeper and the sweep summary files (of any sweeper).

``optuna``: :class:`~musicbench.sweeps.optuna.ResumableOptunaSweeperImpl`, Hydra's Optuna sweeper with
a study that survives interruption (``hydra/sweeper=musicbench_optuna``); ``summary``: the rows,
``sweep_summary.json``, ``trials.csv`` and the :class:`~musicbench.sweeps.summary.SweepSummary` callback.
"""
