"""Torch versions of the ``scipy.signal`` routines the HAAQI ear model needs, along the last dimension.

Each matches scipy to rounding: ``iir_filter`` / ``lfilter`` (``lfilter`` with zero initial state),
``resample_poly``, ``xcorr`` (``correlate(..., "full")`` restricted to a lag range) and its CPU variants
for short lag ranges. On CPU tensors some call scipy itself, whose compiled loops beat torch's there; the
torch forms are for GPUs. Shapes are ``(..., T)``, sample indices and lags in samples.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import scipy.fft
import scipy.signal
import torch
import torchaudio.functional as taf

from musicbench.audio.fft import fft_convolve, next_fast_len

FloatArray = npt.NDArray[np.float64]
# Filter coefficients as scipy takes them: ``b`` (numerator) and ``a`` (denominator, ``a[0] = 1``).
Coefficients = Sequence[float] | npt.NDArray[np.floating]


@functools.lru_cache(maxsize=64)
def impulse_response(b: tuple[float, ...], a: tuple[float, ...], tol: float = 1e-18) -> FloatArray:
    """Truncated impulse response of the stable IIR ``b / a`` (ends where it stays below ``tol`` x peak)."""
    radius = float(np.max(np.abs(np.roots(a)))) if len(a) > 1 else 0.0
    order = len(a)
    n = 64 if radius == 0 else int(math.ceil(math.log(tol) / math.log(radius))) + 64
    n = int(n * (1.0 + 0.25 * order))  # room for repeated poles (polynomial growth)
    impulse = np.zeros(n)
    impulse[0] = 1.0
    h: FloatArray = scipy.signal.lfilter(np.asarray(b), np.asarray(a), impulse)
    above = np.nonzero(np.abs(h) > tol * np.max(np.abs(h)))[0]
    return h[: above[-1] + 1]


def iir_filter(x: torch.Tensor, b: Coefficients, a: Coefficients) -> torch.Tensor:
    """``scipy.signal.lfilter(b, a, x)`` along the last dimension (zero initial state), by FFT convolution.

    For filters whose impulse response dies out within a few thousand samples: the response is truncated
    where it falls below 1e-18 of its peak (``impulse_response``).
    """
    h = impulse_response(tuple(float(v) for v in b), tuple(float(v) for v in a))
    taps = torch.as_tensor(h[: x.shape[-1]], dtype=x.dtype, device=x.device)
    return fft_convolve(x, taps)


def lfilter(x: torch.Tensor, b: Coefficients, a: Coefficients) -> torch.Tensor:
    """``scipy.signal.lfilter`` (recursive; for filters with long impulse responses on a few rows)."""
    if x.device.type == "cpu":
        return torch.from_numpy(scipy.signal.lfilter(np.asarray(b, float), np.asarray(a, float), x.numpy()))
    b_t = torch.as_tensor(np.asarray(b, dtype=np.float64), device=x.device)
    a_t = torch.as_tensor(np.asarray(a, dtype=np.float64), device=x.device)
    n = max(len(b_t), len(a_t))
    b_t = torch.nn.functional.pad(b_t, (0, n - len(b_t)))
    a_t = torch.nn.functional.pad(a_t, (0, n - len(a_t)))
    y: torch.Tensor = taf.lfilter(x, a_t, b_t, clamp=False)
    return y


def resample_poly(x: torch.Tensor, up: int, down: int) -> torch.Tensor:
    """``scipy.signal.resample_poly(x, up, down)`` (Kaiser(5) window, zero padding) along the last dim."""
    g = math.gcd(up, down)
    up, down = up // g, down // g
    if up == down == 1:
        return x.clone()
    if x.device.type == "cpu":  # scipy's upfirdn is compiled; the strided convolutions below are for GPUs
        return torch.from_numpy(scipy.signal.resample_poly(x.numpy(), up, down, axis=-1))
    n_in = x.shape[-1]
    n_out = n_in * up
    n_out = n_out // down + bool(n_out % down)
    max_rate = max(up, down)
    half_len = 10 * max_rate
    h = scipy.signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * up
    n_pre_pad = down - half_len % down
    n_pre_remove = (half_len + n_pre_pad) // down
    h = np.concatenate((np.zeros(n_pre_pad), h))
    # upfirdn (zero-stuff by `up`, convolve with h, keep every `down`-th sample) in polyphase form: the
    # outputs i = c (mod up) use the taps h[p + r up] only, one strided conv1d per phase class c.
    rows = x.reshape(-1, 1, n_in)
    y = x.new_zeros(rows.shape[0], n_out)
    for c in range(min(up, n_out)):
        j0 = (n_pre_remove + c) * down  # full-convolution index of output c
        p = j0 % up
        hp = h[p::up]
        n_r = len(hp)
        m0 = (j0 - p) // up
        n_q = -(-(n_out - c) // up)
        w = torch.as_tensor(hp[::-1].copy(), dtype=x.dtype, device=x.device).view(1, 1, -1)
        right = max(0, m0 + (n_q - 1) * down + 1 - n_in)
        padded = torch.nn.functional.pad(rows, (n_r - 1, right))
        y[:, c::up] = torch.nn.functional.conv1d(padded[..., m0:], w, stride=down)[:, 0, :n_q]
    return y.reshape(*x.shape[:-1], n_out)


def rms(x: torch.Tensor) -> torch.Tensor:
    """``(..., 1)`` root mean square of each ``(..., T)`` row."""
    return torch.sqrt(torch.mean(x**2, dim=-1, keepdim=True))


def circular_xcorr(a: torch.Tensor, v: torch.Tensor, max_lag: int, n_fft: int) -> torch.Tensor:
    """``(..., 2 max_lag + 1)`` lags ``-max_lag .. max_lag`` of the circular cross-correlation at FFT size
    ``n_fft`` (torch FFTs, any device): index ``k`` is ``sum_m a[m + k - max_lag] v[m]``. Equals the linear
    correlation where ``n_fft`` leaves no wrap within the lag range (``n_fft >= T + max_lag + 1``)."""
    c = torch.fft.irfft(torch.fft.rfft(a, n=n_fft) * torch.fft.rfft(v, n=n_fft).conj(), n=n_fft)
    return torch.cat((c[..., n_fft - max_lag :], c[..., : max_lag + 1]), dim=-1)


def xcorr(a: torch.Tensor, v: torch.Tensor, max_lag: int) -> torch.Tensor:
    """``scipy.signal.correlate(a, v, 'full')`` restricted to lags ``-max_lag .. max_lag`` (last dim).

    Returns ``(..., 2 max_lag + 1)``; index ``k`` is lag ``k - max_lag``, i.e. ``sum_m a[m + lag] v[m]``.
    One FFT pair of the whole rows; on CPU in scipy's pocketfft on ``torch.get_num_threads()`` workers
    (several times faster than torch's CPU FFT on long rows). Short lag ranges on CPU have a cheaper
    search: ``xcorr_argmax_cpu``.
    """
    n = a.shape[-1]
    max_lag = min(max_lag, n - 1)
    n_fft = next_fast_len(n + max_lag + 1)  # no circular wrap within +/- max_lag
    if a.device.type != "cpu":
        return circular_xcorr(a, v, max_lag, n_fft)
    workers = torch.get_num_threads()
    fa = scipy.fft.rfft(a.numpy(), n=n_fft, workers=workers)
    fa *= scipy.fft.rfft(v.numpy(), n=n_fft, workers=workers).conj()
    c = torch.from_numpy(scipy.fft.irfft(fa, n=n_fft, workers=workers))
    return torch.cat((c[..., n_fft - max_lag :], c[..., : max_lag + 1]), dim=-1)


def xcorr_blocks(
    a: FloatArray,
    v: FloatArray,
    max_lag: int,
    n_fft: int | None = None,
    dtype: type[np.floating] = np.float64,
) -> npt.NDArray[np.floating]:
    """``xcorr`` for ``max_lag`` much shorter than the rows, from cache-sized FFTs (CPU, NumPy).

    ``v`` is cut into blocks of ``B = n_fft - 2 max_lag`` samples; block ``b`` only meets
    ``a[bB - max_lag : (b + 1)B + max_lag]`` within the lag range, and the correlation of those two has no
    circular wrap at FFT size ``n_fft``. The block cross-spectra are summed, so one inverse FFT per row
    gives every lag: ``2 n_fft / B`` forward points per sample instead of three row-length FFTs.
    ``dtype``: the precision of the transforms (float32: half the time, ~1e-6 relative error).
    """
    lead, n = a.shape[:-1], a.shape[-1]
    a2, v2 = a.reshape(-1, n), v.reshape(-1, n)
    if n_fft is None:
        n_fft = 1 << max(12, (8 * max_lag).bit_length())  # 32768 for +/- 2400: the fastest measured
    block = n_fft - 2 * max_lag
    nblocks = -(-n // block)
    workers = torch.get_num_threads()
    out = np.empty((a2.shape[0], 2 * max_lag + 1), dtype=dtype)
    rows_per_chunk = max(1, (1 << 22) // (nblocks * n_fft))  # ~32 MB of segments per chunk
    for r0 in range(0, a2.shape[0], rows_per_chunk):
        rows = slice(r0, r0 + rows_per_chunk)
        ap = np.zeros((len(a2[rows]), nblocks * block + 2 * max_lag), dtype=dtype)
        ap[:, max_lag : max_lag + n] = a2[rows]
        vp = np.zeros((len(v2[rows]), nblocks * block), dtype=dtype)
        vp[:, :n] = v2[rows]
        segs = np.lib.stride_tricks.as_strided(
            ap,
            shape=(ap.shape[0], nblocks, block + 2 * max_lag),
            strides=(ap.strides[0], block * ap.strides[1], ap.strides[1]),
            writeable=False,
        )
        spec = scipy.fft.rfft(segs, n=n_fft, workers=workers)
        vspec = scipy.fft.rfft(vp.reshape(-1, nblocks, block), n=n_fft, workers=workers)
        spec *= np.conjugate(vspec, out=vspec)
        corr = scipy.fft.irfft(spec.sum(axis=1), n=n_fft, workers=workers)
        out[rows] = corr[:, : 2 * max_lag + 1]  # circular index s is lag s - max_lag
    return out.reshape(*lead, 2 * max_lag + 1)


EXACT_CANDIDATES = 8  # above this many near-maximal float32 lags, a float64 transform of the row is cheaper


def xcorr_argmax_cpu(a: FloatArray, v: FloatArray, lag_lo: int, lag_hi: int) -> npt.NDArray[np.int64]:
    """``(rows,)`` lag in ``lag_lo .. lag_hi`` of the float64 cross-correlation maximum of ``(rows, n)``.

    The correlations are computed in float32 (``xcorr_blocks``); the lags within a safe margin of each
    row's float32 maximum (1e-4 of ``|a| |v|``, a bound 100x the float32 error) are recomputed exactly as
    float64 dot products, so the result is the float64 argmax (first index on ties, as ``np.argmax``).
    Rows with more than ``EXACT_CANDIDATES`` candidates (broad or periodic peaks, silent rows) are
    transformed again in float64, all such rows in one call.
    """
    max_lag = max(abs(lag_lo), abs(lag_hi))
    n = a.shape[-1]
    c32 = xcorr_blocks(a, v, max_lag, dtype=np.float32)[:, max_lag + lag_lo : max_lag + lag_hi + 1]
    bound = 1e-4 * np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", v, v))
    best = np.empty(a.shape[0], dtype=np.int64)
    exact_rows = []
    for r in range(a.shape[0]):
        cand = np.nonzero(c32[r] >= c32[r].max() - bound[r])[0]
        if len(cand) == 1:
            best[r] = lag_lo + int(cand[0])
            continue
        if len(cand) > EXACT_CANDIDATES:
            exact_rows.append(r)
            continue
        values = []
        for i in cand:
            lag = lag_lo + int(i)  # sum_m a[m + lag] v[m]
            values.append(np.dot(a[r, max(0, lag) : n + min(0, lag)], v[r, max(0, -lag) : n - max(0, lag)]))
        best[r] = lag_lo + int(cand[int(np.argmax(values))])
    if exact_rows:
        exact = xcorr_blocks(a[exact_rows], v[exact_rows], max_lag)[
            :, max_lag + lag_lo : max_lag + lag_hi + 1
        ]
        best[exact_rows] = lag_lo + np.argmax(exact, axis=-1)
    return best


def shift_rows(x: torch.Tensor, delay: torch.Tensor) -> torch.Tensor:
    """``out[..., n] = x[..., n + delay[...]]``, zero where ``n + delay`` falls outside the row.

    ``x`` is ``(..., T)``; ``delay`` is an int tensor of the leading shape ``(...)`` (samples).
    """
    npts = x.shape[-1]
    idx = torch.arange(npts, device=x.device) + delay.to(x.device)[..., None]
    valid = (idx >= 0) & (idx < npts)
    shifted = torch.gather(x, -1, idx.clamp(0, npts - 1))
    return torch.where(valid, shifted, torch.zeros((), dtype=x.dtype, device=x.device))


__all__ = [
    "circular_xcorr",
    "iir_filter",
    "impulse_response",
    "lfilter",
    "resample_poly",
    "rms",
    "shift_rows",
    "xcorr",
    "EXACT_CANDIDATES",
    "xcorr_argmax_cpu",
    "xcorr_blocks",
]
