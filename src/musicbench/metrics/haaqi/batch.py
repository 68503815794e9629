"""The HAAQI ear model and features for a whole batch of pairs at once on CPU (the ``"numba"`` back end).

Every stage takes all items together: the signals of a batch (the references in rows ``0 .. B - 1``, the
processed signals in rows ``B .. 2 B - 1``, so that each half is one contiguous block for the pairwise
stages) sit in one zero-padded ``(2 B, T)`` array with their own lengths after the input alignment, and each kernel call runs all items' bands (``kernels.py``; the per-sample recursions stop at
each row's length). The transcendental functions (the OHC gain, the dB conversion, the Box-Muller noise)
are NumPy ufuncs on cache-sized blocks (vectorised, where the per-sample recursions are scalar), split over
the cores by rows.

The bands are processed in chunks sized to a memory budget (``CHUNK_BYTES``): a chunk's working arrays
are ``(2 B, bands, T)`` float64, which for 8 items of 30 s and all 32 bands would be ~3 GB each. Only
the smoothed envelopes and segment covariances (``(B, 32, segments)``) are kept across chunks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.signal
import torch

from musicbench.hearing.nalr import apply_nalr, nalr_fir
from musicbench.metrics.haaqi.dsp import shift_rows, xcorr, xcorr_argmax_cpu
from musicbench.metrics.haaqi.ear import (
    HAAQI_AUDIOGRAM_FREQUENCIES,
    NFIR_NALR,
    SAMPLE_RATE,
    SMALL,
    LossParameters,
    bandwidth_from_rms,
    center_frequency,
    convert_rms_to_sl,
    gain_smoothing_filter,
    gammatone_coefficients,
    ihc_constants,
    loss_parameters,
    middle_ear_filters,
    resample_24khz,
    threshold_noise_gain,
)
from musicbench.metrics.haaqi.noise import stream_keys

CHUNK_BYTES = 3 << 29  # 1.5 GB: working memory of one band chunk (see the module docstring)
ENV_SEGMENT_MS = 8.0  # env_smooth segments of HAAQI
ENVELOPE_LAGS = 2400  # envelope_align's +/- 100 ms at 24 kHz

Draws = Callable[[int], torch.Tensor]


@dataclass
class Aligned:
    """The signals of a batch at 24 kHz after ``input_align`` (and NAL-R where asked)."""

    reference: torch.Tensor  # (B, T) float64, zero past lengths
    processed: torch.Tensor  # (B, T)
    lengths: torch.Tensor  # (B,) int64 samples


@dataclass
class CochleaBatch:
    """What the features need from the ear model, per item (``B`` items, 32 bands)."""

    reference_smooth: torch.Tensor  # (B, nchan, N) env_smooth of the reference envelopes (dB SL)
    processed_smooth: torch.Tensor  # (B, nchan, N)
    smooth_segments: torch.Tensor  # (B,) valid columns of the smoothed envelopes
    covariance: torch.Tensor  # (B, nchan, M) bm_covary segment covariances, clipped to [0, 1]
    reference_ms: torch.Tensor  # (B, nchan, M) reference BM mean squares (x 2, as bm_covary returns)
    covariance_segments: torch.Tensor  # (B,) valid columns of the covariances
    reference_sl: torch.Tensor  # (B, nchan) long-term levels in dB SL (convert_rms_to_sl)
    processed_sl: torch.Tensor  # (B, nchan)
    outputs: tuple[np.ndarray, np.ndarray] | None = None  # (2B, nchan, T) dB SL envelopes and BM motion


def n_segments(npts: int | np.ndarray, nwin: int) -> np.ndarray:
    """pyclarity's segment count of ``npts`` samples in windows of ``nwin`` with 50 % overlap."""
    npts = np.asarray(npts)
    return (1 + np.floor(npts / nwin) + np.floor((npts - nwin / 2) / nwin)).astype(np.int64)


def _rows(fn: Callable[[slice], None], rows: int) -> None:
    """``fn(rows slice)`` on as many row blocks as torch has threads, in threads (NumPy ufuncs on large
    arrays release the GIL)."""
    workers = max(1, min(torch.get_num_threads(), rows))
    if workers == 1:
        fn(slice(0, rows))
        return
    step = -(-rows // workers)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, [slice(r, r + step) for r in range(0, rows, step)]))


BLOCK = 1 << 14  # columns per NumPy call in _row_blocks: 128 KB of float64 stays in the core's L2 cache


def _row_blocks(fn: Callable[[int, slice], None], widths: np.ndarray) -> None:
    """``fn(row, columns)`` over cache-sized column blocks of each row's first ``widths[row]`` columns,
    rows split over threads: a chain of NumPy ufuncs on one block reads memory once instead of once per
    ufunc."""

    def run(rows: slice) -> None:
        for r in range(rows.start, min(rows.stop, len(widths))):
            for c0 in range(0, int(widths[r]), BLOCK):
                fn(r, slice(c0, min(c0 + BLOCK, int(widths[r]))))

    _rows(run, len(widths))


def align_batch(
    reference: torch.Tensor,
    processed: torch.Tensor,
    reference_sr: float,
    processed_sr: float,
    levels: torch.Tensor,
    equalisation: int,
    resampling: str,
) -> Aligned:
    """pyclarity's ``resample_24khz``, ``input_align`` and NAL-R (``equalisation == 1``) for ``(B, T)``
    inputs: one resampler, one FFT cross-correlation and one NAL-R convolution for all items.

    ``levels``: ``(B, 6)`` thresholds in dB HL. Returns zero-padded ``(B, T')`` signals with their lengths.
    """
    ref = resample_24khz(reference.to(torch.float64), reference_sr, resampling)
    proc = resample_24khz(processed.to(torch.float64), processed_sr, resampling)
    n = min(ref.shape[-1], proc.shape[-1])
    ref, proc = ref[:, :n].contiguous(), proc[:, :n].contiguous()
    corr = xcorr(ref - ref.mean(-1, keepdim=True), proc - proc.mean(-1, keepdim=True), n - 1)
    index = torch.argmax(torch.abs(corr), dim=-1)  # index k of the full correlation is lag k - (n - 1)
    delay = torch.round(n - index - 1 - 2 * SAMPLE_RATE / 1000.0).to(torch.int64)
    proc = shift_rows(proc, delay)
    ref_abs = torch.abs(ref)
    above = ref_abs > 0.001 * ref_abs.amax(-1, keepdim=True)
    start = torch.argmax(above.to(torch.int8), dim=-1)
    stop = n - 1 - torch.argmax(above.flip(-1).to(torch.int8), dim=-1)
    lengths = stop - start + 1
    t_max = int(lengths.max())
    valid = torch.arange(t_max, device=ref.device)[None, :] < lengths[:, None]
    ref = torch.where(valid, shift_rows(ref, start)[:, :t_max], 0.0)
    proc = torch.where(valid, shift_rows(proc, start)[:, :t_max], 0.0)
    if equalisation == 1:
        fir, _ = nalr_fir(levels, cfs=HAAQI_AUDIOGRAM_FREQUENCIES, nfir=NFIR_NALR, sample_rate=SAMPLE_RATE)
        ref = torch.where(valid, apply_nalr(fir, ref)[:, NFIR_NALR : NFIR_NALR + t_max], 0.0)
    return Aligned(ref, proc, lengths)


def ohc_gain(
    control: np.ndarray, loss: dict[str, np.ndarray], level1: np.ndarray, widths: np.ndarray
) -> None:
    """The OHC gain (linear) of ``(rows, T)`` control envelopes, in place over each row's first ``widths``
    samples (pyclarity's rule in ``env_compress_basilar_membrane``): the control level
    ``level1 + 20 log10(c)`` clipped to ``[low_knee, 100]`` dB SPL gives
    ``-attn_ohc - (level - low_knee)(1 - 1 / ratio)`` dB, i.e. ``exp(offset - slope ln c)`` for ``c``
    clipped to the knees' linear values.

    ``loss``: ``(rows,)`` arrays ``attn_ohc``, ``low_knee``, ``compression_ratio``; ``level1``: ``(rows,)``.
    """
    db_to_ln = math.log(10.0) / 20.0
    knee = loss["low_knee"]
    slope = 1.0 - 1.0 / loss["compression_ratio"]
    lo = 10.0 ** ((knee - level1) / 20.0)
    hi = 10.0 ** ((np.maximum(100.0, knee) - level1) / 20.0)
    offset = (-loss["attn_ohc"] - (level1 - knee) * slope) * db_to_ln
    neg_slope = -slope

    def block(r: int, cols: slice) -> None:
        c = control[r, cols]
        np.clip(c, lo[r], hi[r], out=c)
        np.log(c, out=c)
        c *= neg_slope[r]
        c += offset[r]
        np.exp(c, out=c)

    _row_blocks(block, widths)


def counter_noise(keys: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Float32 standard-normal draws of the counter-based streams with ``keys`` (``noise.threshold_noise``):
    ``(even, odd)``, each ``(rows, ceil(length / 2))``, the draws ``2p`` and ``2p + 1`` of each stream (the
    cosine and sine outputs of Box-Muller pair ``p``). The hashes run in a kernel, the transcendental part
    in NumPy's SIMD ufuncs on contiguous blocks (interleaving the two would make every ufunc strided)."""
    from musicbench.metrics.haaqi.kernels import noise_hashes

    rows, pairs = keys.shape[0], (length + 1) // 2
    radius = np.empty((rows, pairs), np.float32)
    odd = np.empty((rows, pairs), np.float32)  # the angles, then the sine outputs
    noise_hashes(keys, pairs, radius, odd)
    even = np.empty((rows, pairs), np.float32)

    def block(r: int, cols: slice) -> None:
        rad, angle, cos_out = radius[r, cols], odd[r, cols], even[r, cols]
        np.log(rad, out=rad)
        rad *= -2.0
        np.sqrt(rad, out=rad)
        np.cos(angle, out=cos_out)
        cos_out *= rad
        np.sin(angle, out=angle)
        angle *= rad

    _row_blocks(block, np.full(rows, pairs))
    return even, odd


def _pair_delays(x: np.ndarray, y: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``(rows,)`` ``envelope_align`` shifts of ``y`` rows to ``x`` rows (``(rows, T)``, zero past each
    row's ``lengths``): the cross-correlation peak within +/- 100 ms (``ear.envelope_delays``)."""
    best = np.empty(x.shape[0], np.int64)
    long_rows = 8 * ENVELOPE_LAGS < lengths
    if long_rows.all():  # the zero padding adds nothing to the correlations
        best[:] = xcorr_argmax_cpu(x, y, 1 - ENVELOPE_LAGS, ENVELOPE_LAGS)
    elif long_rows.any():
        idx = np.nonzero(long_rows)[0]
        best[idx] = xcorr_argmax_cpu(x[idx], y[idx], 1 - ENVELOPE_LAGS, ENVELOPE_LAGS)
    for r in np.nonzero(~long_rows)[0]:  # short signals: the exact correlation, as pyclarity's range
        n = int(lengths[r])
        lags = min(ENVELOPE_LAGS, n)
        a, v = torch.from_numpy(x[r, :n]), torch.from_numpy(y[r, :n])
        corr = xcorr(a, v, lags)[1:] if lags < n else xcorr(a, v, n - 1)
        best[r] = int(torch.argmax(corr)) + 1 - lags
    return -best


def _group_delay_corrections(a: np.ndarray) -> np.ndarray:
    """``(B, nchan)`` int shifts that give every band the slowest band's DC group delay (pyclarity's
    ``group_delay_compensate``), from ``(B, nchan)`` gammatone pole radii (``ear.group_delay_correction``)."""
    nchan = a.shape[-1]
    delays = np.empty(a.shape)
    for i in range(a.shape[0]):
        for k in range(nchan):
            aa = a[i, k]
            b_c = np.array([1.0, 4.0 * aa, 4.0 * aa * aa])
            a_c = np.array([1.0, -4.0 * aa, 6.0 * aa**2, -4.0 * aa**3, aa**4])
            _, gd = scipy.signal.group_delay((b_c, a_c), w=1)
            delays[i, k] = gd[0]
    samples = np.rint(delays).astype(np.int64)
    samples -= samples.min(-1, keepdims=True)
    correction: np.ndarray = samples.max(-1, keepdims=True) - samples
    return correction


def _loss_rows(loss_x: LossParameters, loss_y: LossParameters) -> dict[str, np.ndarray]:
    """``(2B, nchan)`` NumPy rows (the references', then the processed signals') of each loss parameter."""
    return {
        name: np.concatenate((getattr(loss_x, name).numpy(), getattr(loss_y, name).numpy()))
        for name in LossParameters._fields
    }


def cochlea_batch(
    aligned: Aligned,
    levels: torch.Tensor,
    level1: np.ndarray,
    itype: int,
    seeds: list[int] | None,
    draws: list[torch.Tensor] | None = None,
    segment_covariance_ms: float = 16.0,
    keep_outputs: bool = False,
    delay_compensate: bool = True,
    nchan: int = 32,
) -> CochleaBatch:
    """The ear model from the middle ear on (pyclarity's ``ear_model`` after ``input_align``) and the
    per-segment reductions HAAQI takes from it (``env_smooth``, ``bm_covary``), for ``B`` items at once.

    Args:
        aligned: ``align_batch``'s output.
        levels: ``(B, 6)`` thresholds in dB HL. level1: ``(B,)`` dB SPL of RMS 1 per item.
        itype: 0 intelligibility (normal-hearing reference), 1 or 2 quality (the listener's loss for both).
        seeds: per-item counter-noise seeds, or None with ``draws``: per item ``(2, nchan, T_i)``
            standard-normal draws (reference, processed), e.g. NumPy's for parity runs.
        keep_outputs: also return the full ``(2B, nchan, T)`` envelopes (dB SL) and BM motion.
    """
    from musicbench.metrics.haaqi import kernels

    n_items = aligned.lengths.shape[0]
    rows = 2 * n_items
    lengths_items = aligned.lengths.numpy().astype(np.int64)
    lengths = np.tile(lengths_items, 2)
    nwin_env = int(np.around(ENV_SEGMENT_MS * 0.001 * SAMPLE_RATE))
    nwin_env += nwin_env % 2
    nwin_cov = int(np.around(segment_covariance_ms * 0.001 * SAMPLE_RATE))
    nwin_cov += nwin_cov % 2
    maxlag = int(np.around(0.001 * SAMPLE_RATE))
    t_pad = aligned.reference.shape[-1] + 2 * max(nwin_cov, nwin_env)  # every segment fits

    # Middle ear (recursive filters along the rows), zero past each row's length.
    (b_lp, a_lp), (b_hp, a_hp) = middle_ear_filters(SAMPLE_RATE)
    sig = torch.cat((aligned.reference, aligned.processed)).numpy()
    mids = np.zeros((rows, t_pad))
    mids[:, : sig.shape[-1]] = scipy.signal.lfilter(
        b_hp, a_hp, scipy.signal.lfilter(b_lp, a_lp, sig, axis=-1)
    )
    mids[np.arange(t_pad)[None, :] >= lengths[:, None]] = 0.0

    cf_np = center_frequency(nchan)
    cf = torch.as_tensor(cf_np)
    levels = levels.to(torch.float64)
    loss_y = loss_parameters(levels, cf_np)
    loss_x = loss_parameters(torch.zeros_like(levels), cf_np) if itype == 0 else loss_y
    loss = _loss_rows(loss_x, loss_y)
    level_rows = np.tile(np.asarray(level1, np.float64), 2)
    bandwidth_1 = loss_parameters(torch.full((6,), 100.0, dtype=torch.float64), cf_np).bandwidth
    tpt = 2 * np.pi / SAMPLE_RATE
    cos_step, sin_step = np.cos(tpt * cf_np), np.sin(tpt * cf_np)
    a1, _, _, g1 = (v.numpy() for v in gammatone_coefficients(bandwidth_1, cf, SAMPLE_RATE))
    a1_rows, g1_rows = np.tile(a1, (rows, 1)), np.tile(g1, (rows, 1))
    all_bands = np.arange(nchan, dtype=np.int64)
    none3 = np.empty((0, 0, 0))
    lp_b, lp_a = gain_smoothing_filter(SAMPLE_RATE)
    lp = np.array([lp_b[0], lp_b[1], lp_a[1]])

    # The control path's levels set each band's bandwidth (and the group delays): all bands first.
    chunk = max(1, min(nchan, CHUNK_BYTES // (4 * rows * t_pad * 8)))
    chunk = -(-nchan // -(-nchan // chunk))  # even chunks
    # One chunk: keep the control envelopes of this pass for the OHC gain; several: recompute per chunk.
    control = np.empty((rows, nchan, t_pad)) if chunk == nchan else none3
    control_ms = np.empty((rows, nchan))
    kernels.gammatone_bands(
        mids, lengths, all_bands, cos_step, sin_step, a1_rows, g1_rows, chunk == nchan, False, none3, lp,
        control, none3, control_ms,
    )  # fmt: skip
    control_rms = torch.from_numpy(np.sqrt(control_ms))
    bw = bandwidth_from_rms(
        control_rms, torch.from_numpy(loss["bandwidth"]), bandwidth_1, torch.from_numpy(level_rows)[:, None]
    )
    a_main, _, _, g_main = (v.numpy() for v in gammatone_coefficients(bw, cf, SAMPLE_RATE))
    if delay_compensate:
        correct = np.tile(_group_delay_corrections(a_main[:n_items]), (2, 1))
    else:
        correct = np.zeros((rows, nchan), np.int64)
    c = ihc_constants(2.0, SAMPLE_RATE)
    ihc = np.array([c[k] for k in ("r2", "p1", "p2", "denom", "a11", "a12", "a21", "a22")] + [1 / c["r1"]])
    base = level_rows[:, None] - loss["attn_ihc"]
    noise_gain = threshold_noise_gain(level_rows)
    keys = None if seeds is None else stream_keys(seeds, nchan)  # (B, 2 * nchan): ref bands, proc bands

    nseg_env = np.tile(n_segments(lengths_items, nwin_env), 2)
    nseg_cov = n_segments(lengths_items, nwin_cov)
    smooth = np.empty((rows, nchan, int(nseg_env.max())))
    cov = np.empty((n_items, nchan, int(nseg_cov.max())))
    ms_x, ms_y = np.empty_like(cov), np.empty_like(cov)
    env_ms = np.empty((rows, nchan))
    outputs = (np.empty((rows, nchan, t_pad)), np.empty((rows, nchan, t_pad))) if keep_outputs else None
    from musicbench.metrics.haaqi.features import covariance_kernel_args, smoothing_kernel_args

    smooth_args = smoothing_kernel_args(nwin_env)
    cov_args = covariance_kernel_args(nwin_cov, maxlag)
    for k0 in range(0, nchan, chunk):
        bands = all_bands[k0 : k0 + chunk]
        nb = len(bands)
        sl = slice(k0, k0 + nb)
        if chunk == nchan:
            work, control = control, none3  # control envelopes -> OHC gain -> log10 of the envelopes
        else:
            work = np.empty((rows, nb, t_pad))
            kernels.gammatone_bands(
                mids, lengths, bands, cos_step, sin_step, a1_rows[:, sl], g1_rows[:, sl], True, False, none3,
                lp, work, none3, np.empty((rows, nb)),
            )  # fmt: skip
        row_len = np.repeat(lengths, nb)
        ohc_gain(
            work.reshape(rows * nb, t_pad),
            {k: np.ascontiguousarray(loss[k][:, sl]).reshape(-1) for k in ("attn_ohc", "low_knee", "compression_ratio")},
            np.repeat(level_rows, nb), row_len,
        )  # fmt: skip
        cc, bm = np.empty((rows, nb, t_pad)), np.empty((rows, nb, t_pad))
        chunk_ms = np.empty((rows, nb))
        kernels.gammatone_bands(
            mids, lengths, bands, cos_step, sin_step, np.ascontiguousarray(a_main[:, sl]),
            np.ascontiguousarray(g_main[:, sl]), True, True, work, lp, cc, bm, chunk_ms,
        )  # fmt: skip
        env_ms[:, sl] = chunk_ms
        pair_len = np.repeat(lengths_items, nb)
        delay_cc = np.zeros((rows, nb), np.int64)
        delay_bm = np.zeros((rows, nb), np.int64)
        delay_cc[n_items:] = _pair_delays(
            cc[:n_items].reshape(-1, t_pad), cc[n_items:].reshape(-1, t_pad), pair_len
        ).reshape(n_items, nb)
        delay_bm[n_items:] = _pair_delays(
            bm[:n_items].reshape(-1, t_pad), bm[n_items:].reshape(-1, t_pad), pair_len
        ).reshape(n_items, nb)

        flat_work, flat_cc = work.reshape(rows * nb, t_pad), cc.reshape(rows * nb, t_pad)

        def log_block(
            r: int, cols: slice, flat_work: np.ndarray = flat_work, flat_cc: np.ndarray = flat_cc
        ) -> None:
            w = flat_work[r, cols]
            np.add(flat_cc[r, cols], SMALL, out=w)
            np.log10(w, out=w)

        _row_blocks(log_block, row_len)
        if keys is not None:
            chunk_keys = np.concatenate((keys[:, sl], keys[:, nchan + k0 : nchan + k0 + nb]))
            even, odd = counter_noise(chunk_keys.reshape(-1), int(lengths.max()))
            even, odd = even.reshape(rows, nb, -1), odd.reshape(rows, nb, -1)
        else:
            assert draws is not None
            given = np.zeros((rows, nb, 2 * ((int(lengths.max()) + 1) // 2)))
            for i, d in enumerate(draws):
                given[[i, n_items + i], :, : d.shape[-1]] = d[:, sl].numpy()
            even, odd = np.ascontiguousarray(given[..., 0::2]), np.ascontiguousarray(given[..., 1::2])
        kernels.adapted_bands(
            cc, bm, work, lengths, delay_cc, delay_bm, np.ascontiguousarray(base[:, sl]), ihc, noise_gain,
            even, odd, np.ascontiguousarray(correct[:, sl]),
        )  # fmt: skip
        del work, even, odd
        part = np.empty((rows * nb, smooth.shape[-1]))
        kernels.segment_sums(flat_cc, np.repeat(nseg_env, nb), *smooth_args, part)
        smooth[:, sl] = part.reshape(rows, nb, -1)
        x, y = bm[:n_items].reshape(-1, t_pad), bm[n_items:].reshape(-1, t_pad)
        parts = [np.empty((n_items * nb, cov.shape[-1])) for _ in range(3)]
        kernels.segment_covariance(
            x, y, np.repeat(nseg_cov, nb), *cov_args[:2], *cov_args[2:], maxlag, *parts
        )
        cov[:, sl], ms_x[:, sl], ms_y[:, sl] = (p.reshape(n_items, nb, -1) for p in parts)
        if outputs is not None:
            outputs[0][:, sl], outputs[1][:, sl] = cc, bm
        del cc, bm, x, y

    env_rms, control_rms_np = np.sqrt(env_ms), control_rms.numpy()
    sl_rows = convert_rms_to_sl(
        torch.from_numpy(env_rms),
        torch.from_numpy(control_rms_np),
        torch.from_numpy(loss["attn_ohc"]),
        torch.from_numpy(loss["low_knee"]),
        torch.from_numpy(loss["compression_ratio"]),
        torch.from_numpy(loss["attn_ihc"]),
        torch.from_numpy(level_rows)[:, None],
    )
    return CochleaBatch(
        reference_smooth=torch.from_numpy(smooth[:n_items]),
        processed_smooth=torch.from_numpy(smooth[n_items:]),
        smooth_segments=torch.from_numpy(nseg_env[:n_items].copy()),
        covariance=torch.from_numpy(np.clip(cov, 0, 1)),
        reference_ms=torch.from_numpy(ms_x * 2.0),
        covariance_segments=torch.from_numpy(nseg_cov),
        reference_sl=sl_rows[:n_items],
        processed_sl=sl_rows[n_items:],
        outputs=outputs,
    )


__all__ = [
    "Aligned",
    "CochleaBatch",
    "align_batch",
    "cochlea_batch",
    "counter_noise",
    "n_segments",
    "ohc_gain",
]
