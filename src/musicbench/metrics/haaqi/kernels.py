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
_INV_2_32 = 1.0 / 4294967296.0
# The threshold noise is computed in float32 (it sits ~75 dB below the signal; float32 halves its cost).
_INV_2_32_F = np.float32(_INV_2_32)
_TWO_PI_INV_2_32_F = np.float32(2.0 * math.pi * _INV_2_32)
_SMALL = 1e-30


_U28, _U4, _U22 = np.uint32(28), np.uint32(4), np.uint32(22)
_PCG_MUL, _PCG_INC, _PCG_OUT = np.uint32(747796405), np.uint32(2891336453), np.uint32(277803737)


@nb.njit(inline="always", **_JIT)
def _pcg32(v: np.uint32) -> np.uint32:
    """The PCG-RXS-M-XS hash of ``noise.pcg_hash`` in uint32 arithmetic (every step cast back to 32 bits): the same bits, and loops over it
    vectorise (32-bit lanes)."""
    state = np.uint32(np.uint32(v * _PCG_MUL) + _PCG_INC)
    word = np.uint32(np.uint32((state >> np.uint32(np.uint32(state >> _U28) + _U4)) ^ state) * _PCG_OUT)
    return np.uint32((word >> _U22) ^ word)


@nb.njit(**_JIT)
def _counter_hashes(pairs: int, even: npt.NDArray[np.uint32], odd: npt.NDArray[np.uint32]) -> None:
    for p in range(pairs):
        even[p] = _pcg32(np.uint32(2 * p))
        odd[p] = _pcg32(np.uint32(2 * p + 1))


@nb.njit(parallel=True, **_JIT)
def noise_hashes(keys: I64, pairs: int, u1: npt.NDArray[np.float32], theta: npt.NDArray[np.float32]) -> None:
    """The Box-Muller inputs of the counter-based noise (``noise.threshold_noise``) of each row.

    ``keys``: ``(rows,)`` stream keys; ``u1``, ``theta``: ``(rows, pairs)`` outputs, the uniform in (0, 1]
    and the angle in radians of pair ``p`` (draws ``2p`` and ``2p + 1``), float32 as in the torch path. The
    transcendental part (log, sqrt, cos, sin) is left to NumPy's SIMD ufuncs (``batch.counter_noise``).
    The inner hashes of the counters do not depend on the key: computed once for all rows.
    """
    inner_even = np.empty(pairs, np.uint32)
    inner_odd = np.empty(pairs, np.uint32)
    _counter_hashes(pairs, inner_even, inner_odd)
    for r in nb.prange(keys.shape[0]):
        key = np.uint32(keys[r])
        u_row = u1[r]
        t_row = theta[r]
        for p in range(pairs):
            u_row[p] = (np.float32(_pcg32(inner_even[p] ^ key)) + np.float32(1.0)) * _INV_2_32_F
            t_row[p] = _TWO_PI_INV_2_32_F * np.float32(_pcg32(inner_odd[p] ^ key))


@nb.njit(parallel=True, **_JIT)
def gammatone_bands(
    x: F64, lengths: I64, bands: I64, cos_step: F64, sin_step: F64, a: F64, gain: F64, store: bool,
    compress: bool, ohc_gain: F64, lp: F64, env: F64, bm: F64, mean_square: F64,
) -> None:  # fmt: skip
    """Gammatone envelopes (and BM motion with OHC compression) of ``S`` signals in the given bands.

    The filter is pyclarity's ``gammatone_basilar_membrane``: demodulation by a rotating carrier, the
    4th-order recursion on the real and imaginary parts, ``env = g |u|`` and ``bm = g Re(u e^{iwt})``.
    With ``compress`` both are multiplied by the OHC gain (``ohc_gain``, linear, computed from the control
    envelopes by ``cochlea_batch.ohc_gain``) smoothed by the 800 Hz low-pass, as
    ``env_compress_basilar_membrane`` does.

    Args:
        x: ``(S, T)`` signals at 24 kHz, zero past ``lengths``.
        lengths: ``(S,)`` samples of each signal; outputs are 0 from there to ``T``.
        bands: ``(nb,)`` band indices into ``cos_step`` / ``sin_step`` (the chunk of bands computed).
        cos_step, sin_step: ``(nchan,)`` cos / sin of the carrier phase step per sample.
        a, gain: ``(S, nb)`` pole radius and gain of each band's filter (its bandwidth).
        store: write ``env`` (False: only ``mean_square``, e.g. for the control path's levels).
        compress: the main path (``bm`` and the compressed ``env``); False: the uncompressed envelope.
        ohc_gain: ``(S, nb, T)`` linear OHC gain (used with ``compress``).
        lp: ``(3,)`` = ``b0, b1, a1`` of the 800 Hz gain-smoothing filter.
        env, bm: ``(S, nb, T)`` outputs. mean_square: ``(S, nb)`` mean square of the uncompressed envelope.
    """
    n_sig, t_len = x.shape
    nb_ = bands.shape[0]
    lb0, lb1, la1 = lp[0], lp[1], lp[2]
    for task in nb.prange(n_sig * nb_):
        s = task // nb_
        j = task % nb_
        k = bands[j]
        n_len = lengths[s]
        aa = a[s, j]
        b1, b2 = 4.0 * aa, 4.0 * aa * aa
        d1, d2, d3, d4 = -4.0 * aa, 6.0 * aa * aa, -4.0 * aa * aa * aa, aa * aa * aa * aa
        g = gain[s, j]
        cs, sn = cos_step[k], sin_step[k]
        cold, sold = 1.0, 0.0
        r0 = r1 = r2 = r3 = 0.0
        i0 = i1 = i2 = i3 = 0.0
        z = 0.0
        acc = 0.0
        for n in range(n_len):
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
                if store:
                    env[s, j, n] = e
                continue
            lin = ohc_gain[s, j, n]
            smooth = lb0 * lin + z
            z = lb1 * lin - la1 * smooth
            env[s, j, n] = smooth * e
            bm[s, j, n] = smooth * (g * (yr * cold + yi * sold))
        if store or compress:
            for n in range(n_len, t_len):
                env[s, j, n] = 0.0
        if compress:
            for n in range(n_len, t_len):
                bm[s, j, n] = 0.0
        mean_square[s, j] = acc / max(n_len, 1)


@nb.njit(parallel=True, **_JIT)
def adapted_bands(
    cc: F64, bm: F64, log_cc: F64, lengths: I64, delay_cc: I64, delay_bm: I64, base: F64, ihc: F64,
    noise_gain: F64, noise_even: npt.NDArray[np.floating], noise_odd: npt.NDArray[np.floating], correct: I64,
) -> None:  # fmt: skip
    """Alignment shift, dB SL, IHC adaptation, threshold noise and group-delay compensation per band, in
    place: ``cc`` becomes the envelope in dB SL, ``bm`` the BM motion with noise.

    Args:
        cc, bm: ``(S, nb, T)`` compressed envelopes / BM motion, zero past ``lengths``.
        log_cc: ``(S, nb, T)`` ``log10(cc + 1e-30)`` (NumPy's SIMD log; the recursion here has none).
        lengths: ``(S,)`` samples of each signal; outputs are 0 from there on.
        delay_cc, delay_bm: ``(S, nb)`` int shifts (``out[n] = in[n + delay]``, zero outside the signal).
        base: ``(S, nb)`` ``level1 - attn_ihc`` in dB (the dB SL of RMS 1 after the IHC loss).
        ihc: ``(9,)`` IHC circuit constants ``r2, p1, p2, denom, a11, a12, a21, a22, 1 / r1``
            (``ear.ihc_constants``).
        noise_gain: ``(S,)`` linear gain of the threshold noise; ``noise_even``, ``noise_odd``:
            ``(S, nb, ceil(T / 2))`` standard-normal draws ``2p`` and ``2p + 1`` (float32 or float64).
        correct: ``(S, nb)`` group-delay corrections in samples (``out[n + c] = in[n]``).
    """
    n_sig, nb_, t_len = cc.shape
    r2, p1, p2, denom = ihc[0], ihc[1], ihc[2], ihc[3]
    a11, a12, a21, a22, r1_inv = ihc[4], ihc[5], ihc[6], ihc[7], ihc[8]
    for task in nb.prange(n_sig * nb_):
        s = task // nb_
        k = task % nb_
        n_len = lengths[s]
        # The outputs overwrite the inputs at other offsets: work from copies of the rows.
        c_row = cc[s, k, :n_len].copy()
        b_row = bm[s, k, :n_len].copy()
        dc, db = delay_cc[s, k], delay_bm[s, k]
        lvl = base[s, k]
        quiet = 10.0 ** (-lvl / 20.0)  # c + 1e-30 at or below this is 0 dB SL after the clip
        shift = correct[s, k]
        gain_n = noise_gain[s]
        v1 = 0.0
        v2 = 0.0
        for n in range(min(shift, n_len)):
            cc[s, k, n] = 0.0
            bm[s, k, n] = 0.0
        for n in range(n_len):
            m = n + dc
            c = 0.0
            env_db = 0.0
            if 0 <= m < n_len:
                c = c_row[m]
                if c + _SMALL > quiet:
                    env_db = max(lvl + 20.0 * log_cc[s, k, m], 0.0)
            m = n + db
            b = b_row[m] if 0 <= m < n_len else 0.0
            b1_ = env_db * r2 + p1 * v1
            b2_ = p2 * v2
            v1 = denom * (a22 * b1_ - a12 * b2_)
            v2 = denom * (-a21 * b1_ + a11 * b2_)
            out = max((env_db - v1) * r1_inv, 0.0)
            # envelope_sl scales the BM by (env_db + s) / (c + s), the IHC stage by (out + s) / (env_db + s):
            # one division for both.
            b = (out + _SMALL) / (c + _SMALL) * b
            if n + shift < n_len:
                cc[s, k, n + shift] = out
                z = noise_even[s, k, n // 2] if n % 2 == 0 else noise_odd[s, k, n // 2]
                bm[s, k, n + shift] = b + gain_n * z
        for n in range(n_len, t_len):
            cc[s, k, n] = 0.0
            bm[s, k, n] = 0.0


@nb.njit(parallel=True, fastmath=True, **_JIT)  # fastmath: vectorised sums (reassociated, ~1e-16)
def segment_sums(x: F64, nseg: I64, windows: F64, lengths: I64, scales: F64, out: F64) -> None:
    """pyclarity's ``env_smooth`` segments of each row: windowed sums with 50 % overlap.

    Segment 0 is the second half of the window from sample 0, segments ``1 .. n - 2`` the full window
    from ``j * nhalf``, the last one the first half window from ``(n - 1) * nhalf`` (a single segment
    is the last one).

    Args:
        x: ``(rows, T)`` (samples past ``T`` count as 0). nseg: ``(rows,)`` segments per row.
        windows: ``(3, nwin)`` first / middle / last windows (zero-padded), ``lengths``: ``(3,)`` their
            lengths, ``scales``: ``(3,)`` their normalisations.
        out: ``(rows, max nseg)``; columns past a row's ``nseg`` are set to 0.
    """
    rows, t_len = x.shape
    nhalf = windows.shape[1] // 2
    for r in nb.prange(rows):
        n_r = nseg[r]
        for j in range(out.shape[1]):
            if j >= n_r:
                out[r, j] = 0.0
                continue
            part = 2 if j == n_r - 1 else (0 if j == 0 else 1)
            st = j * nhalf
            stop = min(lengths[part], t_len - st)
            acc = 0.0
            for m in range(stop):
                acc += x[r, st + m] * windows[part, m]
            out[r, j] = acc * scales[part]


@nb.njit(parallel=True, fastmath=True, **_JIT)  # fastmath: vectorised lag sums (reassociated, ~1e-16)
def segment_covariance(
    x: F64, y: F64, nseg: I64, windows: F64, lengths: I64, inv_wc: F64, inv_sum2: F64, maxlag: int, cov: F64,
    ms_x: F64, ms_y: F64,
) -> None:  # fmt: skip
    """Windowed, mean-removed segment cross-covariance peaks within +/- ``maxlag`` (``bm_covary``).

    Segments as in ``segment_sums`` (half window first and last, 50 % overlap).

    Args:
        x, y: ``(rows, T)`` BM motion (samples past ``T`` count as 0). nseg: ``(rows,)`` segments per row.
        windows: ``(3, nwin)`` first / middle / last windows (zero-padded); ``lengths``: ``(3,)`` theirs.
        inv_wc: ``(3, 2 maxlag + 1)`` inverse window autocorrelations at lags ``-maxlag .. maxlag``.
        inv_sum2: ``(3,)`` ``1 / sum(window**2)``.
        cov, ms_x, ms_y: ``(rows, max nseg)`` outputs: ``max |xcorr / wc| / sqrt(ms_x ms_y)`` (0 when either
            mean square is below 1e-30), and the mean squares; 0 past a row's ``nseg``.
    """
    rows, t_len = x.shape
    nwin = windows.shape[1]
    nhalf = nwin // 2
    nlag = 2 * maxlag + 1
    for k in nb.prange(rows):
        # xs is zero-padded by maxlag on both sides, so lag i - maxlag is one full-length dot product.
        xs = np.zeros(nwin + 2 * maxlag)
        ys = np.empty(nwin)
        c = np.empty(nlag)
        n_k = nseg[k]
        for j in range(cov.shape[1]):
            if j >= n_k:
                cov[k, j] = ms_x[k, j] = ms_y[k, j] = 0.0
                continue
            part = 2 if j == n_k - 1 else (0 if j == 0 else 1)
            seg_len = lengths[part]
            st = j * nhalf
            mx = 0.0
            my = 0.0
            for m in range(seg_len):
                w = windows[part, m]
                inside = st + m < t_len
                xs[maxlag + m] = x[k, st + m] * w if inside else 0.0
                ys[m] = y[k, st + m] * w if inside else 0.0
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
            for m in range(seg_len, nwin):
                xs[maxlag + m] = 0.0
            sx *= inv_sum2[part]
            sy *= inv_sum2[part]
            for i in range(nlag):
                acc = 0.0
                for m in range(seg_len):
                    acc += xs[m + i] * ys[m]
                c[i] = acc
            peak = 0.0
            for i in range(nlag):
                v = abs(c[i] * inv_wc[part, i])
                if v > peak:
                    peak = v
            ms_x[k, j] = sx
            ms_y[k, j] = sy
            cov[k, j] = peak / math.sqrt(sx * sy) if (sx > _SMALL and sy > _SMALL) else 0.0
