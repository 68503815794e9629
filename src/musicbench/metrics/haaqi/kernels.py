"""Numba kernels for the HAAQI ear model and BM covariance on CPU.

On a CPU the cochlear model is a chain of per-sample recursions in each of 32 bands (gammatone, OHC gain
smoothing, IHC adaptation) with point nonlinearities (log, clipping) between them. As whole-array torch
ops every stage is a pass over ``2 x 32 x T`` float64 values through memory, and the FFT forms of the
filters cost ``O(log T)`` per sample; fused compiled loops per band run the same recursions as pyclarity
(``scipy.signal.lfilter``'s direct form II transposed, the carrier rotation of
``gammatone_bandwidth_demodulation``, the IHC circuit) at a few ns per sample and keep each band's state
in registers. Bands and signals are independent, so the outer loops run in parallel (``prange``).

The GPU path is the torch code of ``cochlea.py`` (the stages of ``ear.py``) and ``features.py``; both
paths share the parameter code, the input stages and the counter-based noise of ``noise.py``, and are
tested against pyclarity.
"""

from __future__ import annotations

import math
from typing import Literal, TypedDict

import numba as nb
import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class _JitOptions(TypedDict):
    cache: bool
    nogil: bool
    error_model: Literal["python", "numpy"]


_JIT: _JitOptions = {"cache": True, "nogil": True, "error_model": "numpy"}
_MASK32 = np.int64(0xFFFFFFFF)
_INV_2_32 = 1.0 / 4294967296.0
# The threshold noise is computed in float32 (it sits ~75 dB below the signal; float32 halves its cost).
_INV_2_32_F = np.float32(_INV_2_32)
_TWO_PI_INV_2_32_F = np.float32(2.0 * math.pi * _INV_2_32)
_SMALL = 1e-30


@nb.njit(inline="always", **_JIT)
def _pcg(v: np.int64) -> np.int64:
    state = (v * np.int64(747796405) + np.int64(2891336453)) & _MASK32
    word = (((state >> ((state >> np.int64(28)) + np.int64(4))) ^ state) * np.int64(277803737)) & _MASK32
    return (word >> np.int64(22)) ^ word


@nb.njit(inline="always", **_JIT)
def _normal_pair(key: np.int64, p: np.int64) -> tuple[float, float]:
    """Box-Muller pair ``p`` of the stream with ``key`` (the same formula as ``noise.threshold_noise``,
    in float32)."""
    h1 = _pcg(_pcg(np.int64(2) * p) ^ key)
    h2 = _pcg(_pcg(np.int64(2) * p + np.int64(1)) ^ key)
    radius = math.sqrt(np.float32(-2.0) * math.log((np.float32(h1) + np.float32(1.0)) * _INV_2_32_F))
    theta = _TWO_PI_INV_2_32_F * np.float32(h2)
    return float(radius * math.cos(theta)), float(radius * math.sin(theta))


@nb.njit(parallel=True, **_JIT)
def gammatone_bands(
    x: F64, cos_step: F64, sin_step: F64, a: F64, gain: F64, compress: bool, control: F64, attn_ohc: F64,
    low_knee: F64, comp_ratio: F64, level1: float, lp: F64, env: F64, bm: F64, mean_square: F64,
) -> None:  # fmt: skip
    """Gammatone envelopes (and BM motion with OHC compression) of ``S`` signals in ``nchan`` bands.

    The filter is pyclarity's ``gammatone_basilar_membrane``: demodulation by a rotating carrier, the
    4th-order recursion on the real and imaginary parts, ``env = g |u|`` and ``bm = g Re(u e^{iwt})``.
    With ``compress`` the outputs are compressed as ``env_compress_basilar_membrane`` does, with the gain
    computed from ``control``.

    Args:
        x: ``(S, T)`` signals at 24 kHz.
        cos_step, sin_step: ``(nchan,)`` cos / sin of the carrier phase step per sample.
        a, gain: ``(S, nchan)`` pole radius and gain of each band's filter (its bandwidth).
        compress: False for the control path (``env`` only), True for the main path.
        control: ``(S, nchan, T)`` control envelopes (used with ``compress``).
        attn_ohc, low_knee, comp_ratio: ``(S, nchan)`` OHC attenuation (dB), lower knee (dB SPL), ratio.
        level1: dB SPL of RMS 1. ``lp``: ``(3,)`` = ``b0, b1, a1`` of the 800 Hz gain-smoothing filter.
        env, bm: ``(S, nchan, T)`` outputs: (compressed) envelope and (with ``compress``) BM motion.
        mean_square: ``(S, nchan)`` output: mean square of the uncompressed envelope.
    """
    n_sig, t_len = x.shape
    nchan = cos_step.shape[0]
    db_to_ln = math.log(10.0) / 20.0
    lb0, lb1, la1 = lp[0], lp[1], lp[2]
    for task in nb.prange(n_sig * nchan):
        s = task // nchan
        k = task % nchan
        aa = a[s, k]
        b1, b2 = 4.0 * aa, 4.0 * aa * aa
        d1, d2, d3, d4 = -4.0 * aa, 6.0 * aa * aa, -4.0 * aa * aa * aa, aa * aa * aa * aa
        g = gain[s, k]
        cs, sn = cos_step[k], sin_step[k]
        knee = slope = attn = lin_lo = lin_hi = gain_lo = gain_hi = 0.0
        if compress:
            knee = low_knee[s, k]
            slope = 1.0 - 1.0 / comp_ratio[s, k]
            attn = attn_ohc[s, k]
            # The dB level is clipped to [knee, 100]; the same clip on the linear control envelope lets
            # the (common) samples below the knee or above 100 dB skip the log/exp.
            lin_lo = 10.0 ** ((knee - level1) / 20.0)
            lin_hi = 10.0 ** ((100.0 - level1) / 20.0)
            gain_lo = math.exp(-attn * db_to_ln)
            gain_hi = math.exp((-attn - (max(100.0, knee) - knee) * slope) * db_to_ln)
        cold, sold = 1.0, 0.0
        r0 = r1 = r2 = r3 = 0.0
        i0 = i1 = i2 = i3 = 0.0
        z = 0.0
        acc = 0.0
        for n in range(t_len):
            if n > 0:
                arg = cold * cs + sold * sn
                sold = sold * cs - cold * sn
                cold = arg
            xr = x[s, n] * cold
            xi = x[s, n] * sold
            yr = r0 + xr
            r0 = r1 + b1 * xr - d1 * yr
            r1 = r2 + b2 * xr - d2 * yr
            r2 = r3 - d3 * yr
            r3 = -d4 * yr
            yi = i0 + xi
            i0 = i1 + b1 * xi - d1 * yi
            i1 = i2 + b2 * xi - d2 * yi
            i2 = i3 - d3 * yi
            i3 = -d4 * yi
            e = g * math.sqrt(yr * yr + yi * yi)
            acc += e * e
            if not compress:
                env[s, k, n] = e
                continue
            ctl = control[s, k, n]
            if ctl <= lin_lo:
                lin = gain_lo
            elif ctl >= lin_hi:
                lin = gain_hi
            else:
                level = max(min(level1 + 20.0 * math.log10(max(ctl, _SMALL)), 100.0), knee)
                lin = math.exp((-attn - (level - knee) * slope) * db_to_ln)
            smooth = lb0 * lin + z
            z = lb1 * lin - la1 * smooth
            env[s, k, n] = smooth * e
            bm[s, k, n] = smooth * (g * (yr * cold + yi * sold))
        mean_square[s, k] = acc / t_len


@nb.njit(parallel=True, **_JIT)
def adapted_bands(
    cc: F64, bm: F64, delay_cc: I64, delay_bm: I64, attn_ihc: F64, level1: float, ihc: F64, noise_gain: float,
    keys: I64, noise: F64, correct: I64, out_db: F64, out_bm: F64,
) -> None:  # fmt: skip
    """Alignment shift, dB SL, IHC adaptation, threshold noise and group-delay compensation per band.

    Args:
        cc, bm: ``(S, nchan, T)`` compressed envelopes / BM motion.
        delay_cc, delay_bm: ``(S, nchan)`` int shifts (``out[n] = in[n + delay]``, zero outside).
        attn_ihc: ``(S, nchan)`` IHC attenuation in dB. ``level1``: dB SPL of RMS 1.
        ihc: ``(9,)`` IHC circuit constants ``r2, p1, p2, denom, a11, a12, a21, a22, 1 / r1``
            (``ear.ihc_constants``).
        noise_gain: linear gain of the threshold noise; ``keys``: ``(S, nchan)`` noise stream keys, used
            when ``noise`` is empty, else ``noise``: ``(S, nchan, T)`` draws.
        correct: ``(nchan,)`` group-delay corrections in samples (``out[n + c] = in[n]``).
        out_db, out_bm: ``(S, nchan, T)`` outputs (may alias no input).
    """
    n_sig, nchan, t_len = cc.shape
    r2, p1, p2, denom = ihc[0], ihc[1], ihc[2], ihc[3]
    a11, a12, a21, a22, r1_inv = ihc[4], ihc[5], ihc[6], ihc[7], ihc[8]
    have_noise = noise.shape[0] > 0
    for task in nb.prange(n_sig * nchan):
        s = task // nchan
        k = task % nchan
        dc, db = delay_cc[s, k], delay_bm[s, k]
        base = level1 - attn_ihc[s, k]
        quiet = 10.0 ** (-base / 20.0)  # c + 1e-30 at or below this is 0 dB SL after the clip
        key = keys[s, k]
        shift = correct[k]
        v1 = 0.0
        v2 = 0.0
        z_sin = 0.0
        for n in range(min(shift, t_len)):
            out_db[s, k, n] = 0.0
            out_bm[s, k, n] = 0.0
        for n in range(t_len):
            m = n + dc
            c = cc[s, k, m] if 0 <= m < t_len else 0.0
            m = n + db
            b = bm[s, k, m] if 0 <= m < t_len else 0.0
            env_db = 0.0 if c + _SMALL <= quiet else max(base + 20.0 * math.log10(c + _SMALL), 0.0)
            b1_ = env_db * r2 + p1 * v1
            b2_ = p2 * v2
            v1 = denom * (a22 * b1_ - a12 * b2_)
            v2 = denom * (-a21 * b1_ + a11 * b2_)
            out = max((env_db - v1) * r1_inv, 0.0)
            # envelope_sl scales the BM by (env_db + s) / (c + s), the IHC stage by (out + s) / (env_db + s):
            # one division for both.
            b = (out + _SMALL) / (c + _SMALL) * b
            if have_noise:
                z = noise[s, k, n]
            elif n % 2 == 0:
                z, z_sin = _normal_pair(key, np.int64(n // 2))
            else:
                z = z_sin
            if n + shift < t_len:
                out_db[s, k, n + shift] = out
                out_bm[s, k, n + shift] = b + noise_gain * z


@nb.njit(parallel=True, fastmath=True, **_JIT)  # fastmath: vectorised lag sums (reassociated, ~1e-16)
def segment_covariance(
    x: F64, y: F64, starts: I64, window: F64, inv_wc: F64, inv_sum2: float, maxlag: int, cov: F64, ms_x: F64,
    ms_y: F64,
) -> None:  # fmt: skip
    """Windowed, mean-removed segment cross-covariance peaks within +/- ``maxlag`` (``bm_covary``).

    Args:
        x, y: ``(nchan, T)`` BM motion (zero-padded so every segment fits).
        starts: ``(nseg,)`` first sample of each segment; ``window``: ``(L,)`` the segments' window.
        inv_wc: ``(2 maxlag + 1,)`` inverse window autocorrelation at lags ``-maxlag .. maxlag``.
        inv_sum2: ``1 / sum(window**2)``.
        cov, ms_x, ms_y: ``(nchan, nseg)`` outputs: ``max |xcorr / wc| / sqrt(ms_x ms_y)`` (0 when either
            mean square is below 1e-30), and the mean squares.
    """
    nchan = x.shape[0]
    nseg = starts.shape[0]
    seg_len = window.shape[0]
    nlag = 2 * maxlag + 1
    for k in nb.prange(nchan):
        # xs is zero-padded by maxlag on both sides, so lag i - maxlag is one full-length dot product.
        xs = np.zeros(seg_len + 2 * maxlag)
        ys = np.empty(seg_len)
        c = np.empty(nlag)
        for j in range(nseg):
            st = starts[j]
            mx = 0.0
            my = 0.0
            for m in range(seg_len):
                xs[maxlag + m] = x[k, st + m] * window[m]
                ys[m] = y[k, st + m] * window[m]
                mx += xs[maxlag + m]
                my += ys[m]
            mx /= seg_len
            my /= seg_len
            sx = 0.0
            sy = 0.0
            for m in range(seg_len):
                xs[maxlag + m] -= mx
                ys[m] -= my
                sx += xs[maxlag + m] * xs[maxlag + m]
                sy += ys[m] * ys[m]
            sx *= inv_sum2
            sy *= inv_sum2
            for i in range(nlag):
                acc = 0.0
                for m in range(seg_len):
                    acc += xs[m + i] * ys[m]
                c[i] = acc
            peak = 0.0
            for i in range(nlag):
                v = abs(c[i] * inv_wc[i])
                if v > peak:
                    peak = v
            ms_x[k, j] = sx
            ms_y[k, j] = sy
            cov[k, j] = peak / math.sqrt(sx * sy) if (sx > _SMALL and sy > _SMALL) else 0.0


@nb.njit(parallel=True, fastmath=True, **_JIT)
def windowed_sums(x: F64, starts: I64, window: F64, scale: float, out: F64) -> None:
    """``out[r, j] = scale * sum_m x[r, starts[j] + m] window[m]`` (samples past the row end count as 0).

    ``x``: ``(rows, T)``; ``starts``: ``(nseg,)``; ``window``: ``(L,)``; ``out``: ``(rows, nseg)``.
    """
    rows, t_len = x.shape
    seg_len = window.shape[0]
    for r in nb.prange(rows):
        for j in range(starts.shape[0]):
            st = starts[j]
            stop = min(seg_len, t_len - st)
            acc = 0.0
            for m in range(stop):
                acc += x[r, st + m] * window[m]
            out[r, j] = acc * scale
