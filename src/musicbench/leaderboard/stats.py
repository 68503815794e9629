"""Statistics over per-track scores: aggregates, spread, bootstrap confidence intervals, paired tests.

Pure functions on 1-D NumPy arrays of track values (one value per track, in dB for the SDR family and the
LSD; HAAQI in [0, 1]). NaN values (a metric undefined on a track, e.g. a silent reference) are dropped
first, as the MUSDB protocol and ``summary.json`` do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import stats as sps

Statistic = Literal["median", "mean"]

# Resampled statistics are computed this many resamples at a time: bounds the (resamples, tracks) index
# array to a few MB whatever the number of tracks.
_BOOTSTRAP_BLOCK = 2000


def finite_values(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``values`` as a float64 array without its NaN entries (±inf is kept, as museval's aggregation does)."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[~np.isnan(arr)]


def aggregate(values: Sequence[float] | np.ndarray, statistic: Statistic = "median") -> float:
    """The median or mean of the non-NaN ``values`` (NaN when there are none)."""
    arr = finite_values(values)
    if arr.size == 0:
        return math.nan
    return float(np.median(arr) if statistic == "median" else np.mean(arr))


def quartiles(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """The first and third quartiles ``(q25, q75)`` of the non-NaN ``values`` (NumPy's linear
    interpolation); the interquartile range is ``q75 - q25``. NaN, NaN when there are no values."""
    arr = finite_values(values)
    if arr.size == 0:
        return math.nan, math.nan
    q25, q75 = np.percentile(arr, [25.0, 75.0])
    return float(q25), float(q75)


def bootstrap_distribution(
    values: Sequence[float] | np.ndarray,
    statistic: Statistic = "median",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> np.ndarray:
    """The statistic of ``n_resamples`` bootstrap resamples of the non-NaN ``values``: shape ``(n_resamples,)``.

    Resample ``b`` draws ``n`` indices with replacement, ``rng.integers(0, n, n)``, from
    ``numpy.random.default_rng(seed)``, resample after resample: the same numbers as a loop drawing one
    resample per call, computed a block of resamples at a time.
    """
    arr = finite_values(values)
    n = arr.size
    if n == 0:
        return np.full(n_resamples, math.nan)
    rng = np.random.default_rng(seed)
    reduce = np.median if statistic == "median" else np.mean
    out = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, _BOOTSTRAP_BLOCK):
        stop = min(start + _BOOTSTRAP_BLOCK, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = reduce(arr[idx], axis=1)
    return out


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Statistic = "median",
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the median or mean over tracks.

    The bounds are the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles (NumPy's linear
    interpolation) of :func:`bootstrap_distribution`. With one value both bounds are that value; with none,
    NaN.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    dist = bootstrap_distribution(values, statistic, n_resamples, seed)
    if np.isnan(dist).all():
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(dist, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_values(
    a_tracks: Sequence[str] | np.ndarray,
    a: Sequence[float] | np.ndarray,
    b_tracks: Sequence[str] | np.ndarray,
    b: Sequence[float] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The values of the tracks that ``a`` and ``b`` both have, with a value that is not NaN in either,
    in the order of ``a_tracks``: two arrays of equal length."""
    b_of = dict(zip(b_tracks, np.asarray(b, dtype=np.float64), strict=True))
    pairs = [
        (va, b_of[t])
        for t, va in zip(a_tracks, np.asarray(a, dtype=np.float64), strict=True)
        if t in b_of and not (np.isnan(va) or np.isnan(b_of[t]))
    ]
    if not pairs:
        return np.empty(0), np.empty(0)
    x, y = np.asarray(pairs, dtype=np.float64).T
    return x, y


def wilcoxon_p(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test of paired values ``a`` and ``b`` (same tracks,
    same order): ``scipy.stats.wilcoxon(a, b)`` with its defaults (zero differences dropped; the exact null
    distribution up to 50 pairs, the normal approximation beyond; with ties or zeros, exhaustive
    permutations up to 13 pairs).

    Identical values (every difference zero) give 1.0: nothing tells them apart. Fewer than one non-zero
    pair, or no pairs, give NaN (no test possible).
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired values need equal shapes, got {x.shape} and {y.shape}")
    if x.size == 0:
        return math.nan
    if np.all(x == y):
        return 1.0
    return float(sps.wilcoxon(x, y).pvalue)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values of a family of tests (NaN entries are not part of the family
    and stay NaN).

    With ``m`` p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted value of the ``i``-th is
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``. Rejecting where the adjusted value is below ``alpha``
    controls the family-wise error rate at ``alpha``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out
