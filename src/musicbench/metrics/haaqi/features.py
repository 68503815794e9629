"""HAAQI's features of the ear-model outputs (pyclarity's ``eb`` module), in torch, vectorised.

Inputs are one item's ``(nchan, T)`` envelopes (dB SL) / BM motion at 24 kHz, or ``(nchan, nseg)`` smoothed
envelopes; segment loops are strided convolutions / unfolds and per-segment cross-correlations are FFTs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F

from musicbench.metrics.haaqi.dsp import FloatArray, circular_xcorr
from musicbench.metrics.haaqi.ear import SMALL, center_frequency


def _n_segments(npts: int, nwin: int) -> int:
    return int(1 + np.floor(npts / nwin) + np.floor((npts - nwin / 2) / nwin))


def _segments(x: torch.Tensor, nwin: int, nseg: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The half first segment ``(..., nhalf)``, full middle segments ``(..., nseg - 2, nwin)`` (hop
    ``nwin / 2``) and half last segment ``(..., nhalf)`` of ``(..., T)`` rows, as pyclarity cuts them."""
    nhalf = nwin // 2
    need = nseg * nhalf
    if x.shape[-1] < need:
        x = F.pad(x, (0, need - x.shape[-1]))
    first = x[..., :nhalf]
    # Full segments n = 1 .. nseg - 2 start at n * nhalf and end by nseg * nhalf.
    middle = x[..., nhalf:need].unfold(-1, nwin, nhalf)
    last_start = (nseg - 1) * nhalf
    last = x[..., last_start : last_start + nhalf]
    return first, middle, last


def env_smooth(
    envelopes: torch.Tensor, segment_size: float, sample_rate: float, backend: str = "torch"
) -> torch.Tensor:
    """pyclarity's ``env_smooth``: ``(..., nchan, T)`` -> ``(..., nchan, nseg)`` Hann-windowed averages
    over ``segment_size`` ms with 50 % overlap (half windows at both ends). ``backend="numba"``: a
    compiled loop over CPU tensors."""
    nwin = int(np.around(segment_size * (0.001 * sample_rate)))
    nwin += nwin % 2
    window = torch.hann_window(nwin, periodic=False, dtype=envelopes.dtype, device=envelopes.device)
    nhalf = nwin // 2
    nseg = _n_segments(envelopes.shape[-1], nwin)
    if backend == "numba":
        return _env_smooth_numba(envelopes, window.numpy(), nseg)
    first, middle, last = _segments(envelopes, nwin, nseg)
    half_w, half_w_end = window[nhalf:], window[:nhalf]
    s_first = (first * half_w).sum(-1) / half_w.sum()
    s_mid = middle @ window / window.sum()
    s_last = (last * half_w_end).sum(-1) / half_w.sum()
    return torch.cat((s_first[..., None], s_mid, s_last[..., None]), dim=-1)


def _window_parts(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(3, nwin)`` first / middle / last windows of pyclarity's segments (the second half, the whole
    and the first half of ``window``, zero-padded) and ``(3,)`` their lengths."""
    nwin = len(window)
    nhalf = nwin // 2
    parts = np.zeros((3, nwin))
    parts[0, :nhalf] = window[nhalf:]
    parts[1] = window
    parts[2, :nhalf] = window[:nhalf]
    return parts, np.array([nhalf, nwin, nhalf], dtype=np.int64)


def smoothing_kernel_args(nwin: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(windows, lengths, scales)`` of ``kernels.segment_sums`` for ``env_smooth`` with ``nwin`` samples."""
    window = np.hanning(nwin)  # = torch.hann_window(nwin, periodic=False)
    parts, lengths = _window_parts(window)
    # Both half segments are normalised by the second half window's sum, as pyclarity does.
    half_sum = window[nwin // 2 :].sum()
    return parts, lengths, np.array([1 / half_sum, 1 / window.sum(), 1 / half_sum])


def covariance_kernel_args(nwin: int, maxlag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(windows, lengths, inv_wc, inv_sum2)`` of ``kernels.segment_covariance`` for ``bm_covary``."""
    window = np.hanning(nwin)
    parts, lengths = _window_parts(window)
    inv_wc = np.empty((3, 2 * maxlag + 1))
    inv_sum2 = np.empty(3)
    for i, n in enumerate(lengths):
        win = parts[i, :n]
        inv_wc[i] = 1.0 / np.correlate(win, win, "full")[n - 1 - maxlag : n + maxlag]
        inv_sum2[i] = 1.0 / np.sum(win**2)
    return parts, lengths, inv_wc, inv_sum2


def _env_smooth_numba(envelopes: torch.Tensor, window: np.ndarray, nseg: int) -> torch.Tensor:
    from musicbench.metrics.haaqi.kernels import segment_sums

    rows = np.ascontiguousarray(envelopes.reshape(-1, envelopes.shape[-1]).numpy())
    out = np.empty((rows.shape[0], nseg))
    windows, lengths, scales = smoothing_kernel_args(len(window))
    segment_sums(rows, np.full(rows.shape[0], nseg, np.int64), windows, lengths, scales, out)
    return torch.from_numpy(out).reshape(*envelopes.shape[:-1], nseg)


def _cepstral_basis(nbands: int, nbasis: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    basis = np.cos(np.outer(np.arange(nbands), np.arange(nbasis)) * np.pi / (nbands - 1))
    return torch.as_tensor(basis / np.linalg.norm(basis, axis=0, keepdims=True), dtype=dtype, device=device)


def _above_threshold(reference_db: torch.Tensor, threshold: float) -> torch.Tensor:
    """Indices of segments whose band-averaged linear level exceeds ``threshold`` dB."""
    level = 20 * torch.log10(torch.sum(10 ** (reference_db / 20), dim=0) / reference_db.shape[0])
    return torch.nonzero(level > threshold).flatten()


def _normalized_covariance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``|<x, y>| / sqrt(<x, x><y, y>)`` of mean-removed rows, 0 where either energy < 1e-30."""
    x = x - x.mean(-1, keepdim=True)
    y = y - y.mean(-1, keepdim=True)
    xs, ys = (x**2).sum(-1), (y**2).sum(-1)
    ok = (xs >= SMALL) & (ys >= SMALL)
    value = torch.abs((x * y).sum(-1)) / torch.sqrt(torch.where(ok, xs * ys, torch.ones_like(xs)))
    return torch.where(ok, value, torch.zeros_like(value))


def mel_cepstrum_correlation(
    reference: torch.Tensor, distorted: torch.Tensor, threshold: float, nbasis: int = 6
) -> tuple[torch.Tensor, torch.Tensor]:
    """pyclarity's ``mel_cepstrum_correlation`` (with ``addnoise = 0``): ``(average of 2..6, (nbasis,))``."""
    nbands = reference.shape[0]
    index = _above_threshold(reference, threshold)
    if index.numel() <= 1:
        zero = reference.new_zeros(nbasis)
        return zero.sum(), zero
    cepm = _cepstral_basis(nbands, nbasis, reference.dtype, reference.device)
    ref_cep = cepm.T @ reference[:, index]
    proc_cep = cepm.T @ distorted[:, index]
    corr = _normalized_covariance(ref_cep, proc_cep)
    return corr[1:].sum() / (nbasis - 1), corr


MODULATION_EDGES = (4.0, 8.0, 12.5, 20.0, 32.0, 50.0, 80.0)  # Hz


def modulation_filters(segment_size: float) -> np.ndarray:
    """``(8, n_fir + 1)`` linear-phase modulation filter bank of ``melcor9`` (Hann-windowed ``firwin``)."""
    nyquist = 0.5 * 1000.0 / (0.5 * segment_size)
    n_fir = int(2 * np.floor(np.around(128 * (nyquist / 125)) / 2))
    edge = MODULATION_EDGES
    nmod = 1 + len(edge)
    b = np.zeros((nmod, n_fir + 1))
    b[0] = scipy.signal.firwin(n_fir + 1, edge[0] / nyquist, window="hann", pass_zero="lowpass")
    b[-1] = scipy.signal.firwin(n_fir + 1, edge[-1] / nyquist, window="hann", pass_zero="highpass")
    for m in range(1, nmod - 1):
        b[m] = scipy.signal.firwin(
            n_fir + 1, [edge[m - 1] / nyquist, edge[m] / nyquist], window="hann", pass_zero="bandpass"
        )
    return b


def melcor9(
    reference: torch.Tensor,
    distorted: torch.Tensor,
    threshold: float,
    segment_size: float,
    n_cepstral_coef: int = 6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """pyclarity's ``melcor9`` (with ``add_noise = 0``) on ``(nchan, nseg)`` smoothed envelopes in dB SL.

    Returns:
        ``(average, low, high, per_modulation (8,))`` modulation-filtered cepstral correlations.
    """
    nmod = 1 + len(MODULATION_EDGES)
    index = _above_threshold(reference, threshold)
    if index.numel() <= 1:
        zero = reference.new_zeros(())
        return zero, zero, zero, reference.new_zeros(nmod)
    cepm = _cepstral_basis(reference.shape[0], n_cepstral_coef, reference.dtype, reference.device)
    ref_cep = cepm.T @ reference[:, index]
    proc_cep = cepm.T @ distorted[:, index]
    ref_cep = ref_cep - ref_cep.mean(-1, keepdim=True)
    proc_cep = proc_cep - proc_cep.mean(-1, keepdim=True)
    b = torch.as_tensor(modulation_filters(segment_size), dtype=reference.dtype, device=reference.device)
    half = (b.shape[-1] - 1) // 2
    # conv1d correlates: flip the taps; padding by half on both sides keeps full[half : half + nsel].
    kernels = b.flip(-1)[:, None, :]  # (nmod, 1, taps)
    cep = torch.stack((ref_cep, proc_cep)).reshape(-1, 1, ref_cep.shape[-1])  # (2 * nbasis, 1, nsel)
    filtered = F.conv1d(F.pad(cep, (half, half)), kernels)  # (2 * nbasis, nmod, nsel)
    filtered = filtered.reshape(2, n_cepstral_coef, nmod, -1).transpose(1, 2)  # (2, nmod, nbasis, nsel)
    ccm = _normalized_covariance(filtered[0], filtered[1])  # (nmod, nbasis)
    average = ccm[:, 1:].sum() / (nmod * (n_cepstral_coef - 1))
    low = ccm[:4, 1:].sum() / (4 * (n_cepstral_coef - 1))
    high = ccm[4:8, 1:].sum() / (4 * (n_cepstral_coef - 1))
    return average, low, high, ccm[:, 1:].mean(-1)


def spectrum_diff(
    reference_sl: torch.Tensor, processed_sl: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """pyclarity's ``spectrum_diff``: ``(dloud, dnorm, dslope)``, each ``(..., 3)`` = [sum |d|, nbands
    x std d, max |d|] of loudness-normalised spectra, relative differences and slopes."""
    nbands = reference_sl.shape[-1]
    ref = 10 ** (reference_sl / 20)
    proc = 10 ** (processed_sl / 20)
    ref = ref / ref.sum(-1, keepdim=True)
    proc = proc / proc.sum(-1, keepdim=True)

    def stats(d: torch.Tensor) -> torch.Tensor:
        return torch.stack((d.abs().sum(-1), nbands * d.std(-1, correction=0), d.abs().amax(-1)), dim=-1)

    diff = ref - proc
    return stats(diff), stats(diff / (ref + proc)), stats(torch.diff(ref, dim=-1) - torch.diff(proc, dim=-1))


def _segment_covariance(
    x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, maxlag: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-segment normalised max |cross-covariance| within +/- maxlag and mean squares (un-doubled).

    ``x``, ``y`` are ``(..., nwin)`` segments; ``window`` is ``(nwin,)``.
    """
    nwin = window.shape[0]
    xs = x * window
    ys = y * window
    xs = xs - xs.mean(-1, keepdim=True)
    ys = ys - ys.mean(-1, keepdim=True)
    inv_sum2 = 1.0 / torch.sum(window**2)
    ms_x = (xs**2).sum(-1) * inv_sum2
    ms_y = (ys**2).sum(-1) * inv_sum2
    c = circular_xcorr(xs, ys, maxlag, n_fft=1 << (nwin + maxlag).bit_length())  # lags -maxlag..maxlag
    wc = np.correlate(window.cpu().numpy(), window.cpu().numpy(), "full")
    wc = wc[nwin - 1 - maxlag : nwin + maxlag]
    inv_wc = torch.as_tensor(1 / wc, dtype=x.dtype, device=x.device)
    peak = torch.amax(torch.abs(c * inv_wc), dim=-1)
    ok = (ms_x > SMALL) & (ms_y > SMALL)
    cov = peak / torch.sqrt(torch.where(ok, ms_x * ms_y, torch.ones_like(ms_x)))
    return torch.where(ok, cov, torch.zeros_like(cov)), ms_x, ms_y


def bm_covary(
    reference_bm: torch.Tensor,
    processed_bm: torch.Tensor,
    segment_size: float,
    sample_rate: float,
    backend: str = "torch",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """pyclarity's ``bm_covary``: ``(nchan, nseg)`` segment cross-covariances (clipped to [0, 1]) and
    reference / processed mean squares (x 2) of ``(nchan, T)`` BM motion, segments of ``segment_size`` ms
    with 50 % overlap and lags up to +/- 1 ms.

    ``backend="numba"`` computes the lags directly in a compiled loop (CPU tensors); ``"torch"`` by
    batched FFTs (any device).
    """
    maxlag = int(np.around(1.0 * (0.001 * sample_rate)))
    nwin = int(np.around(segment_size * (0.001 * sample_rate)))
    nwin += nwin % 2 == 1
    nhalf = nwin // 2
    window = torch.hann_window(nwin, periodic=False, dtype=reference_bm.dtype, device=reference_bm.device)
    nseg = _n_segments(reference_bm.shape[-1], nwin)
    if backend == "numba":
        return _bm_covary_numba(reference_bm, processed_bm, window.numpy(), nseg, maxlag)
    xf, xm, xl = _segments(reference_bm, nwin, nseg)
    yf, ym, yl = _segments(processed_bm, nwin, nseg)
    c_f, mx_f, my_f = _segment_covariance(xf, yf, window[nhalf:], maxlag)
    c_m, mx_m, my_m = _segment_covariance(xm, ym, window, maxlag)
    c_l, mx_l, my_l = _segment_covariance(xl, yl, window[:nhalf], maxlag)
    # pyclarity normalises the last half segment by the first half window's sums (same values).
    cov = torch.cat((c_f[..., None], c_m, c_l[..., None]), dim=-1).clamp(0, 1)
    ms_x = torch.cat((mx_f[..., None], mx_m, mx_l[..., None]), dim=-1) * 2.0
    ms_y = torch.cat((my_f[..., None], my_m, my_l[..., None]), dim=-1) * 2.0
    return cov, ms_x, ms_y


def _bm_covary_numba(
    reference_bm: torch.Tensor, processed_bm: torch.Tensor, window: FloatArray, nseg: int, maxlag: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from musicbench.metrics.haaqi.kernels import segment_covariance

    x = np.ascontiguousarray(reference_bm.numpy())
    y = np.ascontiguousarray(processed_bm.numpy())
    cov, ms_x, ms_y = (np.empty((x.shape[0], nseg)) for _ in range(3))
    windows, lengths, inv_wc, inv_sum2 = covariance_kernel_args(len(window), maxlag)
    nsegs = np.full(x.shape[0], nseg, np.int64)
    segment_covariance(x, y, nsegs, windows, lengths, inv_wc, inv_sum2, maxlag, cov, ms_x, ms_y)
    return (
        torch.from_numpy(np.clip(cov, 0, 1)),
        torch.from_numpy(ms_x * 2.0),
        torch.from_numpy(ms_y * 2.0),
    )


def _sync_weights(
    nchan: int, order: Sequence[int], cutoff: Sequence[float], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``(len(order), nchan)`` IHC synchronisation weights of ``ave_covary2``: low-pass responses of the
    given orders and cutoffs (Hz) at the band centre frequencies."""
    cf = center_frequency(nchan)
    order_a = np.asarray(order, dtype=float)[:, None]
    fc2p = np.asarray(cutoff, dtype=float)[:, None] ** (2 * order_a)
    return torch.as_tensor(np.sqrt(fc2p / (fc2p + cf[None, :] ** (2 * order_a))), dtype=dtype, device=device)


def ave_covary2(
    signal_cross_covariance: torch.Tensor,
    reference_mean_square: torch.Tensor,
    threshold_db: float,
    lp_filter_order: Sequence[int] = (1, 3, 5, 5, 5, 5),
    freq_cutoff: Sequence[float] = (1500.0, 2000.0, 2500.0, 3000.0, 3500.0, 4000.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """pyclarity's ``ave_covary2``: ``(average, (6,) IHC-sync weighted averages)`` over tiles above
    threshold of ``(nchan, nseg)`` covariances / mean squares."""
    nchan = signal_cross_covariance.shape[0]
    dt, dev = signal_cross_covariance.dtype, signal_cross_covariance.device
    fsync = _sync_weights(nchan, lp_filter_order, freq_cutoff, dt, dev)
    signal_rms = torch.sqrt(reference_mean_square)
    index = _above_threshold(signal_rms, threshold_db)
    if index.numel() <= 1:
        return signal_rms.new_zeros(()), signal_rms.new_zeros(len(lp_filter_order))
    cov = signal_cross_covariance[:, index]
    rms = signal_rms[:, index]
    weight = (rms > threshold_db).to(dt)
    wsum = weight.sum()
    average = (weight * cov).sum() / wsum if wsum >= 1 else wsum.new_zeros(())
    wsync = fsync[:, :, None] * weight[None]
    sync = (wsync * cov[None]).sum((1, 2)) / wsync.sum((1, 2))
    return average, sync


def _valid(segments: torch.Tensor, width: int) -> torch.Tensor:
    """``(B, width)`` mask of the first ``segments[b]`` columns."""
    return torch.arange(width, device=segments.device)[None, :] < segments[:, None]


def _above_threshold_batch(
    reference_db: torch.Tensor, segments: torch.Tensor, threshold: float
) -> torch.Tensor:
    """``(B, N)`` mask of ``_above_threshold`` for ``(B, nchan, N)`` rows with ``segments`` valid columns."""
    level = 20 * torch.log10(torch.sum(10 ** (reference_db / 20), dim=1) / reference_db.shape[1])
    return (level > threshold) & _valid(segments, reference_db.shape[-1])


def _masked_normalized_covariance(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``_normalized_covariance`` over the entries of the last dimension where ``mask`` (broadcast) holds."""
    count = mask.sum(-1, keepdim=True).clamp(min=1)
    x = torch.where(mask, x - (x * mask).sum(-1, keepdim=True) / count, 0.0)
    y = torch.where(mask, y - (y * mask).sum(-1, keepdim=True) / count, 0.0)
    xs, ys = (x**2).sum(-1), (y**2).sum(-1)
    ok = (xs >= SMALL) & (ys >= SMALL)
    value = torch.abs((x * y).sum(-1)) / torch.sqrt(torch.where(ok, xs * ys, torch.ones_like(xs)))
    return torch.where(ok, value, torch.zeros_like(value))


def melcor9_batch(
    reference: torch.Tensor,
    distorted: torch.Tensor,
    segments: torch.Tensor,
    threshold: float,
    segment_size: float,
    n_cepstral_coef: int = 6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``melcor9``'s high-modulation cepstral correlation of each item of a batch, at once.

    Args:
        reference, distorted: ``(B, nchan, N)`` smoothed envelopes in dB SL, zero past ``segments``.
        segments: ``(B,)`` valid columns of each item.

    Returns:
        ``(high (B,), above (B,))``: the correlations (0 where at most one segment is above threshold) and
        the number of segments above threshold.
    """
    sel = _above_threshold_batch(reference, segments, threshold)  # (B, N)
    nsel = sel.sum(-1)
    # The selected segments of each item, in order, moved to the front (zeros after).
    order = torch.sort((~sel).to(torch.int8), dim=-1, stable=True).indices
    front = _valid(nsel, sel.shape[-1])  # (B, N)
    cepm = _cepstral_basis(reference.shape[1], n_cepstral_coef, reference.dtype, reference.device)
    ceps = []
    for env in (reference, distorted):
        picked = torch.gather(env, -1, order[:, None, :].expand_as(env))
        cep = torch.einsum("kc,bkn->bcn", cepm, picked)  # (B, nbasis, N)
        mean = (cep * front[:, None]).sum(-1, keepdim=True) / nsel.clamp(min=1)[:, None, None]
        ceps.append(torch.where(front[:, None], cep - mean, 0.0))
    b = torch.as_tensor(modulation_filters(segment_size), dtype=reference.dtype, device=reference.device)
    half = (b.shape[-1] - 1) // 2
    kernels = b.flip(-1)[:, None, :]  # conv1d correlates: flip the taps
    n_items, width = reference.shape[0], reference.shape[-1]
    cep = torch.stack(ceps).reshape(-1, 1, width)  # (2 B nbasis, 1, N)
    filtered = F.conv1d(F.pad(cep, (half, half)), kernels)  # zeros past nsel, as the per-item filtering
    nmod = b.shape[0]
    filtered = filtered.reshape(2, n_items, n_cepstral_coef, nmod, width).transpose(
        2, 3
    )  # (2, B, nmod, nbasis, N)
    ccm = _masked_normalized_covariance(
        filtered[0], filtered[1], front[:, None, None, :]
    )  # (B, nmod, nbasis)
    high = ccm[:, 4:8, 1:].sum((-1, -2)) / (4 * (n_cepstral_coef - 1))
    return torch.where(nsel > 1, high, torch.zeros_like(high)), nsel


def ave_covary2_batch(
    signal_cross_covariance: torch.Tensor,
    reference_mean_square: torch.Tensor,
    segments: torch.Tensor,
    threshold_db: float,
    lp_filter_order: Sequence[int] = (1, 3, 5, 5, 5, 5),
    freq_cutoff: Sequence[float] = (1500.0, 2000.0, 2500.0, 3000.0, 3500.0, 4000.0),
) -> torch.Tensor:
    """``ave_covary2``'s ``(B, 6)`` IHC-sync weighted averages of ``(B, nchan, M)`` covariances and mean
    squares with ``segments`` ``(B,)`` valid columns (0 where at most one segment is above threshold)."""
    nchan = signal_cross_covariance.shape[1]
    dt, dev = signal_cross_covariance.dtype, signal_cross_covariance.device
    fsync = _sync_weights(nchan, lp_filter_order, freq_cutoff, dt, dev)
    signal_rms = torch.sqrt(reference_mean_square)
    sel = _above_threshold_batch(signal_rms, segments, threshold_db)  # (B, M)
    weight = ((signal_rms > threshold_db) & sel[:, None, :]).to(dt)  # (B, nchan, M)
    # sum over segments first: (B, nchan) weighted covariance and weight per band
    wc = (weight * signal_cross_covariance).sum(-1)
    w = weight.sum(-1)
    sync = (wc @ fsync.T) / (w @ fsync.T)  # (B, 6)
    return torch.where((sel.sum(-1) > 1)[:, None], sync, torch.zeros_like(sync))


__all__ = [
    "ave_covary2",
    "ave_covary2_batch",
    "bm_covary",
    "env_smooth",
    "mel_cepstrum_correlation",
    "melcor9",
    "melcor9_batch",
    "modulation_filters",
    "spectrum_diff",
]
