"""The batched HAAQI ear model with whole-array torch ops (the ``"torch"`` back end: GPUs, any device).

The same stages as ``cochlea._cochlea_torch`` (FFT filtering, FFT cross-correlations), on the rows of a
batch at once: reference and processed of item ``i`` are rows ``2 i`` and ``2 i + 1`` of ``(2 B, T)``
zero-padded signals with their own lengths. After every filter the samples past a row's length are zeroed
(a filter's tail must not leak into the padding, where a later alignment shift could pull it back), and
per-row quantities (RMS, alignment lags, segment counts) use each row's own length. Output: the same
``CochleaBatch`` as the CPU kernels (``batch.cochlea_batch``), so the features are shared.
"""

from __future__ import annotations

import numpy as np
import torch

from musicbench.metrics.haaqi.batch import (
    ENV_SEGMENT_MS,
    ENVELOPE_LAGS,
    Aligned,
    CochleaBatch,
    _group_delay_corrections,
    n_segments,
)
from musicbench.metrics.haaqi.dsp import circular_xcorr, shift_rows, xcorr
from musicbench.metrics.haaqi.ear import (
    SAMPLE_RATE,
    bandwidth_from_rms,
    center_frequency,
    convert_rms_to_sl,
    env_compress_basilar_membrane,
    envelope_sl,
    gammatone,
    gammatone_coefficients,
    gammatone_fft_size,
    inner_hair_cell_adaptation,
    loss_parameters,
    middle_ear,
    threshold_noise_gain,
)
from musicbench.metrics.haaqi.noise import noise_from_keys, stream_keys


def _row_rms(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(R, K)`` RMS of ``(R, K, T)`` rows over each row's first ``lengths[R]`` samples (zero after)."""
    return torch.sqrt((x * x).sum(-1) / lengths[:, None].to(x.dtype))


def _lag_search(reference: torch.Tensor, output: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(R,)`` ``envelope_align`` shifts of ``output`` rows to ``reference`` rows (``(R, T)``, zero past
    ``lengths``): pyclarity's search of lags ``1 - L .. L`` (``L = min(2400, length)``; at most
    ``length - 1``), first maximum on ties."""
    corr = xcorr(reference, output, ENVELOPE_LAGS)  # index k: lag k - ENVELOPE_LAGS
    lag = torch.arange(-ENVELOPE_LAGS, ENVELOPE_LAGS + 1, device=corr.device)
    lags = lengths.clamp(max=ENVELOPE_LAGS)[:, None]
    valid = (lag >= 1 - lags) & (lag <= torch.minimum(lags, lengths[:, None] - 1))
    best = torch.argmax(
        torch.where(valid, corr, torch.tensor(-torch.inf, dtype=corr.dtype, device=corr.device)), -1
    )
    return -(best - ENVELOPE_LAGS)


def _segment_rows(
    x: torch.Tensor, nseg: torch.Tensor, nwin: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(R, N, nwin)`` segments of ``(R, T)`` rows as pyclarity cuts them (50 % overlap; the first is the
    second half window's samples from 0, the last the first half from ``(n - 1) nwin / 2``, zero-padded to
    ``nwin``) and ``(R, N)`` their part (0 first, 1 middle, 2 last; -1 past the row's ``nseg``); ``N`` is
    ``width`` (at least the largest ``nseg``)."""
    nhalf = nwin // 2
    need = (width + 1) * nhalf + nwin
    x = torch.nn.functional.pad(x, (0, max(0, need - x.shape[-1])))
    seg = x.unfold(-1, nwin, nhalf)[:, :width]  # segment j starts at j * nhalf
    j = torch.arange(width, device=x.device)[None, :]
    part = torch.where(j == nseg[:, None] - 1, 2, torch.where(j == 0, 0, 1))
    part = torch.where(j < nseg[:, None], part, -1)
    # Half segments: only their first nhalf samples count.
    half = (part == 0) | (part == 2)
    keep = torch.arange(nwin, device=x.device) < nhalf
    seg = torch.where(half[..., None] & ~keep, 0.0, seg)
    return seg, part


def _part_windows(nwin: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(3, nwin)`` first / middle / last windows (Hann; halves zero-padded), as ``features._window_parts``."""
    from musicbench.metrics.haaqi.features import _window_parts

    parts, _ = _window_parts(np.hanning(nwin))
    return torch.as_tensor(parts, dtype=dtype, device=device)


def smooth_rows(x: torch.Tensor, nseg: torch.Tensor, nwin: int) -> torch.Tensor:
    """``env_smooth`` of ``(R, T)`` rows with ``(R,)`` segment counts: ``(R, max nseg)``, 0 past each
    row's count (``kernels.segment_sums`` in torch)."""
    from musicbench.metrics.haaqi.features import smoothing_kernel_args

    windows = _part_windows(nwin, x.dtype, x.device)
    scales = torch.as_tensor(smoothing_kernel_args(nwin)[2], dtype=x.dtype, device=x.device)
    seg, part = _segment_rows(x, nseg, nwin, int(nseg.max()))
    p = part.clamp(min=0)
    out = (seg * windows[p]).sum(-1) * scales[p]
    return torch.where(part >= 0, out, 0.0)


def covariance_rows(
    x: torch.Tensor, y: torch.Tensor, nseg: torch.Tensor, nwin: int, maxlag: int, rows_per_chunk: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """``bm_covary`` of ``(R, T)`` row pairs with ``(R,)`` segment counts: ``(cov, ms_x)``, each
    ``(R, max nseg)`` (cov clipped to [0, 1], ms_x doubled, as ``bm_covary``; 0 past each row's count).
    Per-segment cross-correlations by FFT (``kernels.segment_covariance`` in torch)."""
    from musicbench.metrics.haaqi.ear import SMALL
    from musicbench.metrics.haaqi.features import covariance_kernel_args

    windows = _part_windows(nwin, x.dtype, x.device)
    _, lengths, inv_wc, inv_sum2 = covariance_kernel_args(nwin, maxlag)
    seg_len = torch.as_tensor(lengths, dtype=x.dtype, device=x.device)
    inv_wc_t = torch.as_tensor(inv_wc, dtype=x.dtype, device=x.device)
    inv_sum2_t = torch.as_tensor(inv_sum2, dtype=x.dtype, device=x.device)
    n_fft = 1 << (nwin + maxlag).bit_length()
    width = int(nseg.max())
    covs, mss = [], []
    for r0 in range(0, x.shape[0], rows_per_chunk):  # bounds the (rows, segments, n_fft) spectra
        rows = slice(r0, r0 + rows_per_chunk)
        sx, part = _segment_rows(x[rows], nseg[rows], nwin, width)
        sy, _ = _segment_rows(y[rows], nseg[rows], nwin, width)
        p = part.clamp(min=0)
        w = windows[p]
        n = seg_len[p][..., None]
        inside = torch.arange(nwin, device=x.device) < n  # the samples of each (half) segment
        xs, ys = sx * w, sy * w
        xs = torch.where(inside, xs - xs.sum(-1, keepdim=True) / n, 0.0)
        ys = torch.where(inside, ys - ys.sum(-1, keepdim=True) / n, 0.0)
        ms_x = (xs * xs).sum(-1) * inv_sum2_t[p]
        ms_y = (ys * ys).sum(-1) * inv_sum2_t[p]
        c = circular_xcorr(xs, ys, maxlag, n_fft)  # lags -maxlag .. maxlag
        peak = torch.amax(torch.abs(c * inv_wc_t[p]), dim=-1)
        ok = (ms_x > SMALL) & (ms_y > SMALL)
        cov = torch.where(ok, peak / torch.sqrt(torch.where(ok, ms_x * ms_y, 1.0)), 0.0)
        valid = part >= 0
        covs.append(torch.where(valid, cov.clamp(0, 1), 0.0))
        mss.append(torch.where(valid, ms_x * 2.0, 0.0))
    return torch.cat(covs), torch.cat(mss)


def cochlea_batch_torch(
    aligned: Aligned,
    levels: torch.Tensor,
    level1: torch.Tensor,
    itype: int,
    seeds: list[int],
    segment_covariance_ms: float = 16.0,
    nchan: int = 32,
) -> CochleaBatch:
    """``batch.cochlea_batch`` with torch ops on the signals' device (counter-based noise of ``seeds``).

    ``levels``: ``(B, 6)`` dB HL; ``level1``: ``(B,)`` dB SPL of RMS 1.
    """
    ref, proc = aligned.reference, aligned.processed
    dev, dt = ref.device, torch.float64
    n_items, t_len = ref.shape
    lengths_items = aligned.lengths.to(dev)
    lengths = lengths_items.repeat_interleave(2)
    time_idx = torch.arange(t_len, device=dev)
    sig = torch.stack((ref, proc), dim=1).reshape(-1, t_len).to(dt)
    # pyclarity's recursive filters give exact zeros before the first non-zero input sample; FFT filtering
    # leaves ~1e-17 there, which envelope_sl's 1e-30 guards would treat differently: restore them.
    nonzero = sig != 0
    first = torch.where(nonzero.any(-1), torch.argmax(nonzero.to(torch.int8), -1), t_len)
    live = (time_idx >= first[:, None]) & (time_idx < lengths[:, None])  # (R, T)
    live3 = live[:, None, :]

    mids = torch.where(live, middle_ear(sig), 0.0)
    cf_np = center_frequency(nchan)
    cf = torch.as_tensor(cf_np, dtype=dt, device=dev)
    levels = levels.to(device=dev, dtype=dt)
    loss_y = loss_parameters(levels, cf_np)
    loss_x = loss_parameters(torch.zeros_like(levels), cf_np) if itype == 0 else loss_y
    rows = {
        name: torch.stack((getattr(loss_x, name), getattr(loss_y, name)), 1).reshape(-1, nchan)
        for name in loss_y._fields
    }
    level_rows = level1.to(device=dev, dtype=dt).repeat_interleave(2)
    bandwidth_1 = loss_parameters(torch.full((6,), 100.0, dtype=dt, device=dev), cf_np).bandwidth
    spectrum = torch.fft.fft(mids, n=gammatone_fft_size(t_len))
    control, _ = gammatone(mids, bandwidth_1, cf, spectrum=spectrum)
    control = torch.where(live3, control, 0.0)
    control_rms = _row_rms(control, lengths)
    bw = bandwidth_from_rms(control_rms, rows["bandwidth"], bandwidth_1, level_rows[:, None])
    env, bm = gammatone(mids, bw, cf, spectrum=spectrum)
    del spectrum
    env, bm = torch.where(live3, env, 0.0), torch.where(live3, bm, 0.0)
    env_rms = _row_rms(env, lengths)
    level3 = level_rows[:, None, None]
    cc, bm = env_compress_basilar_membrane(
        env, bm, control, rows["attn_ohc"], rows["low_knee"], rows["compression_ratio"], SAMPLE_RATE, level3
    )
    del env, control
    valid3 = (time_idx < lengths[:, None])[:, None, :]
    cc, bm = torch.where(valid3, cc, 0.0), torch.where(valid3, bm, 0.0)

    # envelope_align of the processed rows (odd) to the reference rows (even), per band.
    pair_len = lengths_items.repeat_interleave(nchan)
    for x in (cc, bm):
        delay = _lag_search(x[0::2].reshape(-1, t_len), x[1::2].reshape(-1, t_len), pair_len)
        x[1::2] = shift_rows(x[1::2], delay.reshape(n_items, nchan)).where(valid3[1::2], 0.0)

    db, b = envelope_sl(cc, bm, rows["attn_ihc"], level3)
    del cc, bm
    db, b = inner_hair_cell_adaptation(db, b, 2.0, SAMPLE_RATE)
    db, b = torch.where(valid3, db, 0.0), torch.where(valid3, b, 0.0)
    keys = (
        torch.as_tensor(stream_keys(seeds, nchan), device=dev).reshape(n_items, 2, nchan).reshape(-1, nchan)
    )
    gain = threshold_noise_gain(level_rows)[:, None, None]
    b = b + gain * noise_from_keys(keys, t_len, dt)
    a_ref = gammatone_coefficients(bw[0::2], cf, SAMPLE_RATE)[0].cpu().numpy()
    correct = torch.as_tensor(_group_delay_corrections(a_ref), device=dev).repeat_interleave(2, 0)
    db = torch.where(valid3, shift_rows(db, -correct), 0.0)
    b = torch.where(valid3, shift_rows(b, -correct), 0.0)

    nwin_env = int(np.around(ENV_SEGMENT_MS * 0.001 * SAMPLE_RATE))
    nwin_env += nwin_env % 2
    nwin_cov = int(np.around(segment_covariance_ms * 0.001 * SAMPLE_RATE))
    nwin_cov += nwin_cov % 2
    maxlag = int(np.around(0.001 * SAMPLE_RATE))
    nseg_env = torch.as_tensor(n_segments(lengths.cpu().numpy(), nwin_env), device=dev)
    smooth = smooth_rows(db.reshape(-1, t_len), nseg_env.repeat_interleave(nchan), nwin_env)
    smooth = smooth.reshape(2 * n_items, nchan, -1)
    nseg_cov = torch.as_tensor(n_segments(lengths_items.cpu().numpy(), nwin_cov), device=dev)
    cov, ms_x = covariance_rows(
        b[0::2].reshape(-1, t_len),
        b[1::2].reshape(-1, t_len),
        nseg_cov.repeat_interleave(nchan),
        nwin_cov,
        maxlag,
    )
    sl_rows = convert_rms_to_sl(
        env_rms, control_rms, rows["attn_ohc"], rows["low_knee"], rows["compression_ratio"], rows["attn_ihc"],
        level_rows[:, None],
    )  # fmt: skip
    return CochleaBatch(
        reference_smooth=smooth[0::2],
        processed_smooth=smooth[1::2],
        smooth_segments=nseg_env[0::2],
        covariance=cov.reshape(n_items, nchan, -1),
        reference_ms=ms_x.reshape(n_items, nchan, -1),
        covariance_segments=nseg_cov,
        reference_sl=sl_rows[0::2],
        processed_sl=sl_rows[1::2],
    )


__all__ = ["cochlea_batch_torch", "covariance_rows", "smooth_rows"]
