import math

import numpy as np
import pytest
from scipy import stats as sps

from musicbench.leaderboard import stats


def _loop_bootstrap_ci(values, statistic, n_resamples, confidence, seed):
    """Reference: one resample per call, in a Python loop."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    rng = np.random.default_rng(seed)
    reduce = np.median if statistic == "median" else np.mean
    dist = [reduce(arr[rng.integers(0, arr.size, arr.size)]) for _ in range(n_resamples)]
    alpha = (1 - confidence) / 2
    return tuple(np.quantile(dist, [alpha, 1 - alpha]))


@pytest.mark.parametrize("statistic", ["median", "mean"])
@pytest.mark.parametrize("n_resamples", [10_000, 2_345])  # one full block and a partial last block
def test_bootstrap_ci_matches_a_loop_with_the_same_seed(statistic, n_resamples):
    values = np.random.default_rng(3).normal(4.0, 2.0, 17)
    values[[2, 9]] = np.nan  # dropped before resampling
    ours = stats.bootstrap_ci(values, statistic, n_resamples, 0.95, seed=7)
    ref = _loop_bootstrap_ci(values, statistic, n_resamples, 0.95, seed=7)
    assert ours == pytest.approx(ref, abs=1e-12)
    point = stats.aggregate(values, statistic)
    assert ours[0] <= point <= ours[1]
    # Another seed draws other resamples.
    assert stats.bootstrap_ci(values, statistic, n_resamples, 0.95, seed=8) != ours


def test_bootstrap_ci_narrows_with_confidence_and_handles_edge_cases():
    values = np.random.default_rng(0).normal(0.0, 1.0, 30)
    wide = stats.bootstrap_ci(values, "mean", 4000, 0.99, seed=0)
    narrow = stats.bootstrap_ci(values, "mean", 4000, 0.5, seed=0)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
    assert stats.bootstrap_ci([2.5], "median", 100) == (2.5, 2.5)
    assert all(math.isnan(v) for v in stats.bootstrap_ci([math.nan], "median", 100))
    with pytest.raises(ValueError, match="confidence"):
        stats.bootstrap_ci(values, confidence=1.5)


def test_aggregate_and_quartiles_skip_nan_like_numpy():
    values = np.array([1.0, 7.0, np.nan, 3.0, 10.0, -2.0])
    clean = values[~np.isnan(values)]
    assert stats.aggregate(values, "median") == np.median(clean)
    assert stats.aggregate(values, "mean") == pytest.approx(np.mean(clean))
    assert stats.quartiles(values) == tuple(np.percentile(clean, [25, 75]))
    assert math.isnan(stats.aggregate([], "median"))


def test_wilcoxon_p_is_scipy_on_the_pairs():
    rng = np.random.default_rng(1)
    a = rng.normal(5.0, 1.0, 25)
    b = a + rng.normal(0.3, 1.0, 25)
    assert stats.wilcoxon_p(a, b) == pytest.approx(sps.wilcoxon(a, b).pvalue, rel=1e-12)


def test_wilcoxon_identical_is_not_significant_a_clear_difference_is():
    a = np.random.default_rng(2).normal(0.0, 3.0, 20)
    assert stats.wilcoxon_p(a, a.copy()) == 1.0
    assert stats.wilcoxon_p(a, a + 2.0 + np.random.default_rng(3).normal(0, 0.1, 20)) < 0.001
    assert math.isnan(stats.wilcoxon_p([], []))
    with pytest.raises(ValueError, match="equal shapes"):
        stats.wilcoxon_p([1.0, 2.0], [1.0])


def test_paired_values_keep_common_tracks_without_nan():
    x, y = stats.paired_values(
        ["a", "b", "c", "d"], [1.0, 2.0, np.nan, 4.0], ["d", "b", "c", "e"], [40.0, 20.0, 30.0, 50.0]
    )
    assert x.tolist() == [2.0, 4.0] and y.tolist() == [20.0, 40.0]
    x, y = stats.paired_values(["a"], [1.0], ["b"], [1.0])
    assert x.size == y.size == 0


def _holm_reference(p):
    """Step-down Holm: walk the sorted p-values, multiplying the i-th smallest by m - i, keeping the maximum."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def test_holm_matches_the_step_down_reference():
    p = np.random.default_rng(4).uniform(0, 0.2, 9)
    assert stats.holm(p) == pytest.approx(_holm_reference(list(p)))
    assert stats.holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    with_nan = stats.holm([0.01, np.nan, 0.04])
    assert math.isnan(with_nan[1]) and with_nan[[0, 2]] == pytest.approx([0.02, 0.04])
