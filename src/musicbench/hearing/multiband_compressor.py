"""The Cadenza CAD2 multiband compressor (pyclarity's ``clarity.enhancer.multiband_compressor``), batched.

pyclarity's ``MultibandCompressor`` splits the signal into ``len(crossover_frequencies) + 1`` bands with a
Linkwitz-Riley crossover (D'Appolito 1984), compresses each band with a feed-forward compressor
(Giannoulis, Massberg & Reiss 2012) and sums the bands. Per band and sample::

    x_g  = max(20 log10(|x|), -120)                          # dB, x == 0 read as 1e-12
    y_g  = static curve of x_g (threshold, ratio, knee)      # dB
    y_l  = x_g - y_g                                         # gain reduction, dB
    alpha = alpha_attack if y_l[n] > s[n-1] else alpha_release,  alpha = exp(-1 / (0.001 fs t_ms))
    s[n] = alpha s[n-1] + (1 - alpha) y_l[n],  s[-1] = 0     # smoothed reduction, dB
    y    = x 10 ** ((makeup_gain - s) / 20)

How each part is computed here:

- **Crossover:** the same filter design as pyclarity (4th-order Linkwitz-Riley low/high pairs in
  transfer-function form, the all-pass phase compensators from their sums), applied with
  ``scipy.signal.lfilter`` in pyclarity's order, so the bands are bit-identical to pyclarity's. The filters
  are 4th and 8th order with repeated poles: a scan over a state-space form would be exact in
  exact arithmetic but not bit-compatible with ``lfilter``'s direct form, and the filtering is a small
  part of the cost (pyclarity's time is in its per-sample Python loop).
- **Compressor:** the attack/release choice depends on the state ``s[n-1]`` itself, so the recursion
  is *nonlinear* and no associative scan applies (unlike the CAD1 compressor in ``hearing/compressor.py``,
  whose branch depends only on the input). Each band runs as one compiled numba loop (level, static
  curve, smoothing and gain fused: as separate whole-array torch ops the elementwise passes over
  ``bands x channels x T`` values cost ten times the recursion itself).

The computation runs on the CPU in float64 (the result comes back on the input's device and dtype) and
is not differentiable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final, Literal, TypedDict, overload

import numba as nb
import numpy as np
import numpy.typing as npt
import torch
from scipy.signal import butter, lfilter, tf2zpk, zpk2tf

F64 = npt.NDArray[np.float64]
ParamValue = float | Sequence[float] | npt.ArrayLike | torch.Tensor

#: The CAD2 baseline crossover frequencies in Hz: 250, 500, 1000, 2000, 4000 Hz times sqrt(2).
CAD2_CROSSOVER_FREQUENCIES: Final = (353.55, 707.11, 1414.21, 2828.43, 5656.85)
CROSSOVER_ORDER: Final = 4  # Linkwitz-Riley order; pyclarity implements order 4 only
EPS: Final = 1e-12  # pyclarity replaces exact zeros by this before taking the log
FLOOR_DB: Final = -120.0  # level floor of the gain computer, dB

# pyclarity's defaults for a missing parameter.
DEFAULTS: Final = {
    "attack": 15.0,  # ms
    "release": 100.0,  # ms
    "threshold": 0.0,  # dB
    "ratio": 1.0,
    "makeup_gain": 0.0,  # dB
    "knee_width": 0.0,  # dB
}


class _JitOptions(TypedDict):
    cache: bool
    nogil: bool


_JIT: _JitOptions = {"cache": True, "nogil": True}
# 20 log10(x) = 20 / ln(10) * ln(x): exp and log are cheaper than pow and log10 (a few ulp apart).
_DB_PER_NEPER: Final = 20.0 / math.log(10.0)


# --------------------------------------------------------------------------------------------- crossover


def _linkwitz_riley(cutoff: float, btype: Literal["low", "high"]) -> tuple[F64, F64]:
    """``(b, a)`` of a Butterworth of half the order applied twice (pyclarity's ``linkwitz_riley``)."""
    b, a = butter(CROSSOVER_ORDER // 2, cutoff, btype=btype)
    zeros, poles, gain = tf2zpk(b, a)
    b2, a2 = zpk2tf(np.concatenate((zeros, zeros)), np.concatenate((poles, poles)), gain**2)
    return np.asarray(b2, dtype=np.float64), np.asarray(a2, dtype=np.float64)


def _all_pass(b1: F64, a1: F64, b2: F64, a2: F64) -> tuple[F64, F64]:
    """``(b, a)`` of the sum of two filters in parallel (pyclarity's ``make_all_pass``)."""
    z1, p1, k1 = tf2zpk(b1, a1)
    z2, p2, k2 = tf2zpk(b2, a2)
    numerator = np.poly(np.concatenate((z1, p2))) * k1 + np.poly(np.concatenate((z2, p1))) * k2
    denominator = np.poly(np.concatenate((p1, p2)))
    # The roots come in conjugate pairs, so the polynomials are real (pyclarity stores them as float64).
    return np.real(numerator).astype(np.float64), np.real(denominator).astype(np.float64)


class CrossoverFilters(TypedDict):
    """Transfer functions of a crossover with ``N`` frequencies (all ``(b, a)`` float64 coefficient pairs)."""

    lowpass: list[tuple[F64, F64]]  # N, order 4
    highpass: list[tuple[F64, F64]]  # N, order 4
    allpass: list[tuple[F64, F64]]  # N, order 8


def crossover_filters(crossover_frequencies: Sequence[float], sample_rate: float) -> CrossoverFilters:
    """Design the Linkwitz-Riley crossover as pyclarity's ``compute_coefficients`` does.

    Args:
        crossover_frequencies: ``N`` increasing frequencies in Hz, each in ``(0, sample_rate / 2)``.
        sample_rate: in Hz.

    Returns:
        The ``N`` low-pass, high-pass and all-pass ``(b, a)`` pairs, indexed by crossover frequency.
    """
    freqs = _check_crossover(crossover_frequencies, sample_rate)
    filters: CrossoverFilters = {"lowpass": [], "highpass": [], "allpass": []}
    for freq in freqs:
        cutoff = freq / (sample_rate / 2)
        low = _linkwitz_riley(cutoff, "low")
        high = _linkwitz_riley(cutoff, "high")
        filters["lowpass"].append(low)
        filters["highpass"].append(high)
        filters["allpass"].append(_all_pass(low[0], low[1], high[0], high[1]))
    return filters


def _band_chain(filters: CrossoverFilters, band: int) -> list[tuple[F64, F64]]:
    """The filters of one band in pyclarity's order: its low-pass, the high-passes below, the all-passes above.

    The all-passes give every band the phase of the crossovers it does not pass through, so the bands sum
    to an all-pass response.
    """
    n_freqs = len(filters["lowpass"])
    chain = []
    if band < n_freqs:
        chain.append(filters["lowpass"][band])
    chain.extend(filters["highpass"][m] for m in range(band))
    if n_freqs > 1:
        chain.extend(filters["allpass"][m] for m in range(band + 1, n_freqs))
    return chain


def crossover(
    signal: torch.Tensor, crossover_frequencies: Sequence[float], sample_rate: float = 44100.0
) -> torch.Tensor:
    """Split ``signal (..., T)`` into ``(N + 1, ..., T)`` bands, lowest first (pyclarity's ``Crossover``).

    Float64 on the CPU, bit-identical to pyclarity; returned on ``signal``'s device in float64.
    """
    filters = crossover_filters(crossover_frequencies, sample_rate)
    x = _as_float64_numpy(signal)
    return torch.from_numpy(_split(x, filters)).to(signal.device)


def _split(x: F64, filters: CrossoverFilters) -> F64:
    bands = []
    for band in range(len(filters["lowpass"]) + 1):
        y = x
        for b, a in _band_chain(filters, band):
            y = lfilter(b, a, y, axis=-1)
        bands.append(y)
    return np.stack(bands)


# -------------------------------------------------------------------------------------------- compressor


@nb.njit(**_JIT)
def _compress_rows(  # pragma: no cover  (compiled)
    bands: F64,
    threshold: F64,
    ratio: F64,
    knee_width: F64,
    makeup_gain: F64,
    alpha_attack: F64,
    alpha_release: F64,
) -> F64:
    """``(rows, T)`` compressed band signals from ``(rows, T)`` band signals, one parameter set per row.

    pyclarity's ``Compressor.__call__`` fused into one pass, in its order and with its branches: the level
    in dB, the static curve, the attack/release smoothing of the gain reduction, the gain (dB conversions
    through ``log``/``exp`` instead of ``log10``/``10 **``: the same to a few ulp). Parameters are
    ``(rows,)``: threshold, knee width and makeup gain in dB; alphas from ``smoothing_coefficient``.
    """
    rows, samples = bands.shape
    out = np.empty_like(bands)
    for r in range(rows):
        thr = threshold[r]
        rat = ratio[r]
        knee = knee_width[r]
        makeup = makeup_gain[r]
        attack = alpha_attack[r]
        release = alpha_release[r]
        state = 0.0
        for n in range(samples):
            x = bands[r, n]
            if x == 0.0:
                x = EPS  # pyclarity overwrites exact zeros in place, so the output is EPS * gain too
            level = _DB_PER_NEPER * math.log(abs(x))
            if level < FLOOR_DB:
                level = FLOOR_DB
            target = thr + (level - thr) / rat
            if knee == 0:
                if level < thr:
                    target = level
            else:
                if 2 * np.abs(level - thr) <= knee:
                    target = level + ((1 / rat - 1) * (level - thr + knee / 2) ** 2) / (2 * knee)
                if 2 * (level - thr) < -knee:
                    target = level
            reduction = level - target
            # The branch depends on the state: a nonlinear recursion (attack while the reduction grows).
            alpha = attack if reduction > state else release
            state = alpha * state + (1 - alpha) * reduction
            out[r, n] = x * math.exp((makeup - state) / _DB_PER_NEPER)
    return out


def smoothing_coefficient(time_ms: F64, sample_rate: float) -> F64:
    """``exp(-1 / (0.001 * sample_rate * time_ms))``: the one-pole coefficient of a time constant in ms."""
    t = np.asarray(time_ms, dtype=np.float64)
    return np.asarray(np.exp(-1.0 / (0.001 * sample_rate * t)), dtype=np.float64)


# -------------------------------------------------------------------------------------- the compressor


class MultibandCompressor:
    """pyclarity's ``MultibandCompressor`` with its parameters and defaults, batched.

    Args:
        crossover_frequencies: ``N`` increasing crossover frequencies in Hz (``N + 1`` bands), each in
            ``(0, sample_rate / 2)``; a single number for two bands. CAD2 uses
            ``CAD2_CROSSOVER_FREQUENCIES``.
        sample_rate: in Hz.
        compressors_params: a mapping with any of ``attack`` (ms), ``release`` (ms), ``threshold`` (dB),
            ``ratio``, ``makeup_gain`` (dB) and ``knee_width`` (dB); missing keys take pyclarity's
            defaults (15 ms, 100 ms, 0 dB, 1, 0 dB, 0 dB: no compression). Each value is one number for
            all bands, ``N + 1`` numbers (one per band, lowest first) or an array/tensor of shape
            ``(..., N + 1)`` whose leading dimensions broadcast against the signal's (e.g. ``(2, 1, 6)``
            for per-ear parameters of a ``(2, batch, T)`` signal).

    Raises:
        ValueError: naming the parameter and value, for a bad frequency, rate, unknown key, wrong number
            of bands, non-positive time constant or ratio, negative knee width or non-finite value.
    """

    def __init__(
        self,
        crossover_frequencies: float | Sequence[float] | npt.ArrayLike,
        sample_rate: float = 44100.0,
        compressors_params: Mapping[str, ParamValue] | None = None,
    ) -> None:
        if isinstance(sample_rate, bool) or not (
            isinstance(sample_rate, int | float) and math.isfinite(sample_rate) and sample_rate > 0
        ):
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
        freqs = np.atleast_1d(np.asarray(crossover_frequencies, dtype=np.float64))
        self.xover_freqs = _check_crossover(freqs, float(sample_rate))
        self.sample_rate = float(sample_rate)
        self.num_compressors = len(self.xover_freqs) + 1
        self.filters = crossover_filters(tuple(self.xover_freqs), self.sample_rate)
        params = dict(compressors_params or {})
        unknown = sorted(set(params) - set(DEFAULTS))
        if unknown:
            raise ValueError(
                f"compressors_params has unknown keys {unknown}; expected some of {sorted(DEFAULTS)}"
            )
        self.set_compressors(**params)

    def set_compressors(
        self,
        attack: ParamValue = DEFAULTS["attack"],
        release: ParamValue = DEFAULTS["release"],
        threshold: ParamValue = DEFAULTS["threshold"],
        ratio: ParamValue = DEFAULTS["ratio"],
        makeup_gain: ParamValue = DEFAULTS["makeup_gain"],
        knee_width: ParamValue = DEFAULTS["knee_width"],
    ) -> None:
        """Replace the per-band parameters (as pyclarity's ``set_compressors``; see the class for shapes)."""
        values = {
            "attack": attack,
            "release": release,
            "threshold": threshold,
            "ratio": ratio,
            "makeup_gain": makeup_gain,
            "knee_width": knee_width,
        }
        checked = {name: self._check_param(name, value) for name, value in values.items()}
        self.attack = checked["attack"]  # ms, (..., bands)
        self.release = checked["release"]  # ms
        self.threshold = checked["threshold"]  # dB
        self.ratio = checked["ratio"]
        self.makeup_gain = checked["makeup_gain"]  # dB
        self.knee_width = checked["knee_width"]  # dB
        self.alpha_attack = smoothing_coefficient(self.attack, self.sample_rate)
        self.alpha_release = smoothing_coefficient(self.release, self.sample_rate)

    def _check_param(self, name: str, value: ParamValue) -> F64:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        try:
            array = np.array(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number or numbers, got {value!r}") from None
        if array.ndim == 0:
            array = np.full(self.num_compressors, float(array))
        if array.shape[-1] != self.num_compressors:
            raise ValueError(
                f"{name} must be one number or {self.num_compressors} (one per band: len(crossover_frequencies)"
                f" + 1) along its last dimension, got shape {array.shape}: {value!r}"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"{name} must be finite, got {value!r}")
        if name in ("attack", "release") and not (array > 0).all():
            raise ValueError(f"{name} must be a positive time in ms, got {value!r}")
        if name == "ratio" and not (array > 0).all():
            raise ValueError(f"ratio must be positive (1 = no compression), got {value!r}")
        if name == "knee_width" and not (array >= 0).all():
            raise ValueError(f"knee_width must be >= 0 dB (0 = hard knee), got {value!r}")
        return array

    def __repr__(self) -> str:
        return (
            f"MultibandCompressor(crossover_frequencies={self.xover_freqs.tolist()}, "
            f"sample_rate={self.sample_rate}, attack={self.attack.tolist()}, release={self.release.tolist()}, "
            f"threshold={self.threshold.tolist()}, ratio={self.ratio.tolist()}, "
            f"makeup_gain={self.makeup_gain.tolist()}, knee_width={self.knee_width.tolist()})"
        )

    def bands(self, signal: torch.Tensor) -> torch.Tensor:
        """``(bands, ..., T)`` float64 crossover bands of ``signal (..., T)``, on the CPU."""
        return torch.from_numpy(_split(_as_float64_numpy(signal), self.filters))

    @overload
    def process(self, signal: torch.Tensor, return_bands: Literal[False] = False) -> torch.Tensor: ...

    @overload
    def process(
        self, signal: torch.Tensor, return_bands: Literal[True]
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def process(
        self, signal: torch.Tensor, return_bands: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Compress ``signal (..., T)``: each row along the last dimension is an independent channel.

        Args:
            signal: ``(..., T)`` samples (full scale 1), any float dtype and device; computed in float64.
            return_bands: also return the compressed bands.

        Returns:
            ``(..., T)`` the compressed signal in float64 on ``signal``'s device (``...`` broadcast with the
            parameters' leading dimensions), and with ``return_bands`` the ``(bands, ..., T)`` compressed
            bands, lowest first, whose sum it is. pyclarity returns ``(1, T)`` for a 1-D input; here the
            shape follows the input.
        """
        if not isinstance(signal, torch.Tensor):
            raise TypeError(f"signal must be a torch.Tensor, got {type(signal).__name__}")
        x = _as_float64_numpy(signal)
        lead = tuple(signal.shape[:-1])
        params = (
            self.threshold,
            self.ratio,
            self.knee_width,
            self.makeup_gain,
            self.alpha_attack,
            self.alpha_release,
        )
        try:
            shape = np.broadcast_shapes(lead, *(p.shape[:-1] for p in params))
        except ValueError:
            shapes = {p.shape for p in params}
            raise ValueError(
                f"compressor parameter shapes {sorted(shapes)} do not broadcast against signal {tuple(signal.shape)}"
            ) from None
        x = np.broadcast_to(x, (*shape, x.shape[-1]))
        bands = _split(x, self.filters)  # (bands, *shape, T)

        def per_row(p: F64) -> F64:
            # (..., bands) -> (bands, *shape) -> one value per row of `bands`
            moved = np.moveaxis(np.broadcast_to(p, (*shape, self.num_compressors)), -1, 0)
            return np.ascontiguousarray(moved.reshape(-1), dtype=np.float64)

        rows = _compress_rows(
            np.ascontiguousarray(bands.reshape(-1, bands.shape[-1])),
            per_row(self.threshold),
            per_row(self.ratio),
            per_row(self.knee_width),
            per_row(self.makeup_gain),
            per_row(self.alpha_attack),
            per_row(self.alpha_release),
        )
        compressed = torch.from_numpy(rows.reshape(bands.shape))
        out = compressed.sum(dim=0).to(signal.device)
        if return_bands:
            return out, compressed.to(signal.device)
        return out

    __call__ = process


def multiband_compress(
    signal: torch.Tensor,
    crossover_frequencies: float | Sequence[float] = CAD2_CROSSOVER_FREQUENCIES,
    sample_rate: float = 44100.0,
    compressors_params: Mapping[str, ParamValue] | None = None,
) -> torch.Tensor:
    """Functional ``MultibandCompressor(crossover_frequencies, sample_rate, compressors_params)(signal)``."""
    return MultibandCompressor(crossover_frequencies, sample_rate, compressors_params).process(signal)


# ----------------------------------------------------------------------------------------------- helpers


def _check_crossover(crossover_frequencies: Sequence[float] | F64, sample_rate: float) -> F64:
    freqs = np.atleast_1d(np.asarray(crossover_frequencies, dtype=np.float64))
    if freqs.ndim != 1 or freqs.size == 0:
        raise ValueError(
            f"crossover_frequencies must be one or more frequencies in Hz, got {crossover_frequencies!r}"
        )
    nyquist = sample_rate / 2
    if not (np.isfinite(freqs).all() and (freqs > 0).all() and (freqs < nyquist).all()):
        raise ValueError(
            f"crossover_frequencies must lie in (0, {nyquist}) Hz (below Nyquist at sample_rate "
            f"{sample_rate} Hz), got {freqs.tolist()}"
        )
    if not (np.diff(freqs) > 0).all():
        raise ValueError(f"crossover_frequencies must be strictly increasing, got {freqs.tolist()}")
    return freqs


def _as_float64_numpy(signal: torch.Tensor) -> F64:
    if signal.ndim == 0:
        raise ValueError("signal must have a samples dimension, got a scalar")
    if signal.is_complex() or not signal.is_floating_point():
        raise TypeError(f"signal must be a real floating-point tensor, got {signal.dtype}")
    array: F64 = signal.detach().to(device="cpu", dtype=torch.float64).numpy()
    return array
