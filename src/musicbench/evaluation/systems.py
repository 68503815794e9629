"""The names of the systems an evaluation scores: the keys of ``scores`` in ``results/<track>.json`` and
of ``systems`` in ``summary.json``.

A deterministic model gives one estimate per track, ``model``. A stochastic model gives ``K`` seeded
samples, ``sample_0`` ... ``sample_<K-1>``, and their average waveform, ``mean``; the runner then adds
``best_of_k`` and ``diversity``. The do-nothing baseline is named by the evaluator (``input_baseline``).
Oracles, estimates the runner computes from the references (upper bounds), are ``oracle_<name>``: the
ideal ratio mask is ``oracle_irm``.
"""

from __future__ import annotations

from collections.abc import Iterable

MODEL = "model"
SAMPLE_PREFIX = "sample_"
MEAN = "mean"
BEST_OF_K = "best_of_k"
DIVERSITY = "diversity"
ORACLE_PREFIX = "oracle_"
ORACLE_IRM = "oracle_irm"


def sample_name(k: int) -> str:
    """The system name of a stochastic model's ``k``-th sample: ``sample_<k>``."""
    return f"{SAMPLE_PREFIX}{int(k)}"


def sample_names(systems: Iterable[str]) -> list[str]:
    """The ``sample_<k>`` names among ``systems``, in the order of ``k`` (``sample_10`` after ``sample_9``)."""
    samples = [s for s in systems if s.startswith(SAMPLE_PREFIX) and s[len(SAMPLE_PREFIX) :].isdigit()]
    return sorted(samples, key=lambda s: int(s[len(SAMPLE_PREFIX) :]))


def oracle_name(name: str) -> str:
    """The system name of the evaluator's oracle ``name`` (a key of ``evaluator.oracles``): ``oracle_<name>``."""
    return f"{ORACLE_PREFIX}{name}"


def is_model_system(name: str) -> bool:
    """Whether ``name`` is one of the names a model or the runner gives its systems (not free for a baseline)."""
    return name in (MODEL, MEAN, BEST_OF_K, DIVERSITY) or name.startswith((SAMPLE_PREFIX, ORACLE_PREFIX))
