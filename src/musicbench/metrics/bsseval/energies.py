"""Frame projections and their energies in the frequency domain; the v4 path for frames that tile the signal."""

from __future__ import annotations

import torch

from musicbench.metrics.bsseval.common import _bins_bytes, _chunk_bytes, _rfft_padded, _Workspace
from musicbench.metrics.bsseval.filters import _boundary_xcorr, _filters_from_xcorr, _lagged_xcorr


def _filter_spectra(h_all: torch.Tensor, h_j: torch.Tensor, nfft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frequency-major spectra of the filters: ``(K, [F,] S_e*C_out, S*C_in)`` and ``(K, [F,] Q, C_out, C_in)``."""
    hf_all = torch.fft.rfft(h_all, n=nfft).movedim(-1, 0)  # (K, [F,] S_e, C_out, S*C_in)
    hf_j = torch.fft.rfft(h_j, n=nfft).movedim(-1, 0)
    return hf_all.flatten(-3, -2).contiguous(), hf_j.contiguous()


def _parseval_weights(nfft: int, device: torch.device) -> torch.Tensor:
    """``w`` with ``sum_t z[t]^2 = sum_k w[k] |rfft(z, nfft)[k]|^2`` for real ``z`` of length ``<= nfft``."""
    w = torch.full((nfft // 2 + 1,), 2.0 / nfft, dtype=torch.float64, device=device)
    w[0] = 1.0 / nfft
    if nfft % 2 == 0:
        w[-1] = 1.0 / nfft
    return w


def _frame_metrics(
    ref: torch.Tensor,
    est: torch.Tensor,
    hf_all: torch.Tensor,
    hf_j: torch.Tensor,
    nfft: int,
    pairs_t: torch.Tensor,
    pairs_e: torch.Tensor,
    bsseval_sources: bool,
    ws: _Workspace,
) -> torch.Tensor:
    """Metrics of a batch of frames, with the projections computed in the frequency domain.

    Args:
        ref, est: ``(F, S, C, n)`` frames.
        hf_all: ``(K, S_e*C_out, S*C_in)`` spectra (:func:`_filter_spectra`) of the filters projecting each
            estimate on all references (v4), or ``(K, F, S_e*C_out, S*C_in)`` per frame (v3).
        hf_j: ``(K, Q, C_out, C_in)`` (or ``(K, F, Q, C_out, C_in)``): filters projecting estimate
            ``pairs_e[q]`` on reference ``pairs_t[q]``.
        nfft: FFT size, ``>= n + filter_len - 1`` (full linear convolutions).
        ws: buffers reused across calls.

    Returns:
        ``(4, Q, F)`` dB values (sdr, isr, sir, sar) for each (true, estimate) pair.
    """
    nframes, nsrc, nchan, _ = ref.shape
    shape = (nfft // 2 + 1, nframes, nsrc, nchan)
    cplx = hf_all
    # frequency-major spectra: the per-bin channel mixing is then one batched matmul
    xk = ws("xk", shape, cplx).copy_(_rfft_padded(ref, nfft, ws, "x").permute(3, 0, 1, 2))
    ek = ws("ek", shape, cplx).copy_(_rfft_padded(est, nfft, ws, "x").permute(3, 0, 1, 2))
    w = _parseval_weights(nfft, ref.device)
    energies = _spectral_energies(xk, ek, hf_all, hf_j, w, pairs_t, pairs_e, bsseval_sources, ws)
    sdr_energies = None if bsseval_sources else _sdr_energies(ref, est, pairs_t, pairs_e, ws)
    return _to_db(energies, sdr_energies)


def _spectral_energies(
    xk: torch.Tensor,
    ek: torch.Tensor,
    hf_all: torch.Tensor,
    hf_j: torch.Tensor,
    w: torch.Tensor,
    pairs_t: torch.Tensor,
    pairs_e: torch.Tensor,
    bsseval_sources: bool,
    ws: _Workspace,
) -> torch.Tensor:
    """Energies of the projections and error terms of frames, from their spectra, over the bins given.

    Args:
        xk, ek: ``(K, F, S, C)`` spectra of the reference and estimate frames (``rfft``, ``n=nfft``; any ``K``
            consecutive bins of them).
        hf_all, hf_j: the filter spectra of those bins, as in :func:`_frame_metrics`.
        w: ``(K,)`` Parseval weights of those bins (:func:`_parseval_weights`).

    Returns:
        ``(5, Q, F)``: ``|P_j|^2``, ``|P_all|^2``, ``|e_interf|^2``, ``|e_artif|^2`` and ``|e_spat|^2`` (or
        ``|s_hat - P_j|^2`` with ``bsseval_sources``), summed over channels and the bins given.
    """
    nbins, nframes, nsrc, nchan = xk.shape
    npairs = pairs_t.numel()
    identity = npairs == nsrc  # pairs (j, j): no gathers needed
    cplx = hf_all

    def energy(z: torch.Tensor, inplace: bool = False) -> torch.Tensor:  # (K, F, Q, C) -> (Q, F)
        zr = torch.view_as_real(z).reshape(nbins, -1)
        sq = zr.mul_(zr) if inplace else torch.mul(zr, zr, out=ws("sq", zr.shape, zr))
        # weighted sum over bins as one matrix-vector product (BLAS), then over channels and re/im
        return (w @ sq).view(nframes, npairs, nchan * 2).sum(dim=-1).T

    def diff_energy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return energy(torch.sub(a, b, out=ws("diff", a.shape, cplx)), inplace=True)

    xt = xk if identity else xk[:, :, pairs_t]  # (K, F, Q, C_in): s of each pair
    ek = ek if identity else ek[:, :, pairs_e]  # (K, F, Q, C)
    x_flat = xk.reshape(nbins, nframes, nsrc * nchan)
    if hf_all.ndim == 4:  # per-frame filters (v3)
        p_all = torch.matmul(hf_all, x_flat[..., None])[..., 0]  # (K, F, S_e*C)
        p_j = ws("p_j", xt.shape, cplx).copy_(hf_j[..., 0] * xt[..., None, 0])  # (K, F, Q, C_out)
        for ci in range(1, nchan):
            p_j.addcmul_(hf_j[..., ci], xt[..., None, ci])
    else:
        p_all = ws("p_all", (nbins, nframes, nsrc * nchan), cplx)
        p_all = torch.matmul(x_flat, hf_all.mT, out=p_all)  # (K, F, S_e*C)
        hf = hf_j[:, None]  # (K, 1, Q, C_out, C_in)
        p_j = torch.mul(hf[..., 0], xt[..., None, 0], out=ws("p_j", xt.shape, cplx))
        for ci in range(1, nchan):
            p_j.addcmul_(hf[..., ci], xt[..., None, ci])  # (K, F, Q, C_out)
    p_all = p_all.view(nbins, nframes, nsrc, nchan)
    p_all = p_all if identity else p_all[:, :, pairs_e]  # (K, F, Q, C)
    return torch.stack(
        [
            energy(p_j),
            energy(p_all),
            diff_energy(p_all, p_j),
            diff_energy(ek, p_all),
            diff_energy(ek, p_j) if bsseval_sources else diff_energy(p_j, xt),
        ]
    )


def _sdr_energies(
    ref: torch.Tensor, est: torch.Tensor, pairs_t: torch.Tensor, pairs_e: torch.Tensor, ws: _Workspace
) -> torch.Tensor:
    """``(2, Q, F)``: ``|s|^2`` and ``|s_hat - s|^2`` of the ``(F, S, C, n)`` frames, in the time domain (SDR of
    the image variant)."""
    identity = pairs_t.numel() == ref.shape[1]
    est_q, ref_q = (est, ref) if identity else (est[:, pairs_e], ref[:, pairs_t])  # no copies for (j, j)
    err = torch.sub(est_q, ref_q, out=ws("err", est_q.shape, ref))
    # norms (one pass, any strides; a batched dot product copies strided operands first), squared
    s_energy = torch.linalg.vector_norm(ref, dim=(-2, -1)).square()[:, pairs_t].T
    return torch.stack([s_energy, torch.linalg.vector_norm(err, dim=(-2, -1)).square().T])


def _to_db(energies: torch.Tensor, sdr_energies: torch.Tensor | None) -> torch.Tensor:
    """``(4, Q, F)`` sdr, isr, sir, sar in dB from :func:`_spectral_energies` and (images) :func:`_sdr_energies`
    (``None``: the ``bss_eval_sources`` variant, ISR NaN)."""
    e_pj, e_pall, e_interf, e_artif, e_last = energies.unbind(0)
    out = torch.full((4, *e_pj.shape), float("nan"), dtype=torch.float64, device=energies.device)
    if sdr_energies is None:
        out[0] = _safe_db(e_pj, e_last)
    else:
        out[0] = _safe_db(sdr_energies[0], sdr_energies[1])
        out[1] = _safe_db(sdr_energies[0], e_last)
    out[2] = _safe_db(e_pj, e_interf)
    out[3] = _safe_db(e_pall, e_artif)
    return out


def _v4_tiled(
    ref: torch.Tensor,
    est: torch.Tensor,
    win: int,
    nwin: int,
    filter_len: int,
    nfft: int,
    pairs_t: torch.Tensor,
    pairs_e: torch.Tensor,
    bsseval_sources: bool,
) -> torch.Tensor:
    """v4 metrics of every frame when the frames tile the signal (``hop == win``): each frame is transformed
    once, and its spectrum serves both the whole-signal correlations that fit the filters and the frame's
    projections (the general path transforms every sample twice, with different block lengths).

    Args:
        ref, est: ``(S, C, T)``; frame ``t`` is ``[t * win, (t + 1) * win)``, ``nwin * win <= T``.
        nfft: ``>= win + filter_len - 1``.

    Returns:
        ``(4, Q, nwin)`` dB (silent frames included: the caller masks them).
    """
    nsrc, nchan, nsampl = ref.shape
    npch, nlen, nbins = nsrc * nchan, filter_len, nfft // 2 + 1
    x, e = ref.reshape(npch, nsampl), est.reshape(npch, nsampl)
    ref_frames = ref[..., : nwin * win].unflatten(-1, (nwin, win)).permute(2, 0, 1, 3)  # (nwin, S, C, win)
    est_frames = est[..., : nwin * win].unflatten(-1, (nwin, win)).permute(2, 0, 1, 3)
    ws = _Workspace()

    # 1. spectra of all frames, frequency-major: (K, frame, reference channels then estimate channels)
    spec = torch.empty((nbins, nwin, 2 * npch), dtype=torch.complex128, device=ref.device)
    # frames per FFT batch: ~4 at 44.1 kHz on CPU, where the scattered writes into spec cost twice as much
    # with 2 frames (shorter contiguous runs) and larger batches no longer fit the allocator's cached blocks
    step = max(1, 3 * _chunk_bytes(ref.device) // (2 * 8 * nfft * 2 * npch))
    sdr_energies = None
    if not bsseval_sources:
        sdr_energies = torch.empty(2, pairs_t.numel(), nwin, dtype=torch.float64, device=ref.device)
    for f0 in range(0, nwin, step):
        f1 = min(f0 + step, nwin)
        buf = ws("frames", (f1 - f0, 2, nsrc, nchan, nfft), ref)
        buf[..., win:].zero_()
        buf[:, 0, ..., :win].copy_(ref_frames[f0:f1])
        buf[:, 1, ..., :win].copy_(est_frames[f0:f1])
        spec[:, f0:f1].copy_(torch.fft.rfft(buf.flatten(1, 3)).permute(2, 0, 1))
        if sdr_energies is not None:
            sdr_energies[:, :, f0:f1] = _sdr_energies(buf[:, 0], buf[:, 1], pairs_t, pairs_e, ws)

    # 2. whole-signal correlations (as _lagged_xcorr): within frames from their spectra, then the samples
    # after the last frame and the products that straddle frame boundaries
    kb = max(1, _bins_bytes(ref.device) // (16 * 2 * npch * nwin))  # bins per batch
    acc_h = torch.empty(nbins, npch, 2 * npch, dtype=torch.complex128, device=ref.device)
    for k0 in range(0, nbins, kb):
        z = spec[k0 : k0 + kb]  # (kb, nwin, M)
        xh = z[..., :npch].mH.contiguous()  # BLAS operands (a conjugate view would be copied anyway)
        torch.bmm(xh, z, out=acc_h[k0 : k0 + kb])  # [q, p]: sum over frames of Z_p conj(X_q)
    r = torch.fft.irfft(acc_h.permute(2, 1, 0), n=nfft)[..., :nlen]  # (M, PC, L)
    del acc_h
    tail = nsampl - nwin * win
    if tail:
        r += _lagged_xcorr(x[:, nwin * win :], e[:, nwin * win :], nlen)
    nbound = nwin - 1 + (tail > 0)
    if nbound and nlen > 1:
        r += _boundary_xcorr(x, e, torch.arange(1, nbound + 1, device=ref.device) * win, nlen)

    # 3. filters, and the energies of every frame, a batch of bins at a time
    h_all, h_j = _filters_from_xcorr(r, nsrc, nchan)
    hf_all, hf_j = _filter_spectra(h_all, h_j[pairs_t, pairs_e], nfft)
    w = _parseval_weights(nfft, ref.device)
    kb = max(1, _bins_bytes(ref.device) // (16 * npch * nwin))
    energies = torch.zeros(5, pairs_t.numel(), nwin, dtype=torch.float64, device=ref.device)
    for k0 in range(0, nbins, kb):
        z = spec[k0 : k0 + kb].unflatten(-1, (2, nsrc, nchan))  # (kb, nwin, 2, S, C)
        k1 = k0 + z.shape[0]
        energies += _spectral_energies(
            z[:, :, 0],
            z[:, :, 1],
            hf_all[k0:k1],
            hf_j[k0:k1],
            w[k0:k1],
            pairs_t,
            pairs_e,
            bsseval_sources,
            ws,
        )
    return _to_db(energies, sdr_energies)


def _safe_db(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """museval's ``_safe_db``: ``+inf`` where the denominator is exactly zero."""
    return torch.where(den == 0, torch.inf, 10.0 * torch.log10(num / den))
