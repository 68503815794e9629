"""The projection filters of BSSEval: lagged correlations, block Toeplitz Gram systems and their solution."""

from __future__ import annotations

import torch

from musicbench.audio.fft import next_fast_len
from musicbench.metrics.bsseval.common import (
    _CHOLESKY_RTOL,
    _EPS,
    _PROPORTIONAL_TOL,
    _XCORR_NFFT,
    _chunk_bytes,
    _rfft_padded,
    _Workspace,
)


def _lagged_xcorr(x: torch.Tensor, extra: torch.Tensor, nlags: int) -> torch.Tensor:
    """Linear cross-correlations ``r[..., p, q, k] = sum_t z[..., p, t + k] * x[..., q, t]`` with
    ``z = cat(x, extra)`` along channels, for lags ``0 <= k < nlags`` (signals zero outside ``[0, T)``).

    The signals are cut into non-overlapping blocks; the within-block correlations are summed in the
    frequency domain (one batched matmul per chunk of blocks) and the products that straddle block boundaries
    are added from short FFTs around each boundary.

    Args:
        x: ``(..., Q, T)``.
        extra: ``(..., E, T)``, more leading channels.

    Returns:
        ``(..., Q + E, Q, nlags)``.
    """
    *batch, nq, nsampl = x.shape
    nfft = max(_XCORR_NFFT, 1 << (4 * nlags - 1).bit_length())
    if nsampl + nlags - 1 <= nfft:
        nfft = next_fast_len(nsampl + nlags - 1)
    block = nfft - nlags + 1
    nblocks = -(-nsampl // block)
    nbins = nfft // 2 + 1
    xs, es = x.reshape(-1, nq, nsampl), extra.reshape(-1, extra.shape[-2], nsampl)
    nbatch, nch = xs.shape[0], nq + es.shape[1]
    step = max(1, 4 * _chunk_bytes(x.device) // (16 * nbins * nch * nbatch))  # blocks per matmul
    ws = _Workspace()
    cplx = torch.empty(0, dtype=torch.complex128, device=x.device)
    acc = torch.zeros(nbatch * nbins, nch, nq, dtype=torch.complex128, device=x.device)
    for b0 in range(0, nblocks, step):
        nb = min(step, nblocks - b0)
        lo, hi = b0 * block, min((b0 + nb) * block, nsampl)
        spec = ws("spec", (nbatch, nbins, nch, nb), cplx)  # frequency-major block spectra
        for sig, ch in ((xs, slice(0, nq)), (es, slice(nq, nch))):
            seg = sig[..., lo:hi]
            if hi - lo < nb * block:  # the partial last block: zero-pad this piece only
                seg = torch.nn.functional.pad(seg, (0, nb * block - (hi - lo)))
            seg_spec = _rfft_padded(seg.unflatten(-1, (nb, block)), nfft, ws, "seg")
            spec[:, :, ch].copy_(seg_spec.movedim(-1, 1))
        spec = spec.view(nbatch * nbins, nch, nb)
        acc.baddbmm_(spec, spec[:, :nq].mH)  # sum over blocks of Z_p conj(X_q), per bin: (B*K, M, Q)
    acc = acc.view(*batch, nbins, nch, nq)
    r: torch.Tensor = torch.fft.irfft(acc.movedim(-3, -1), n=nfft)[..., :nlags]
    if nblocks > 1 and nlags > 1:
        r = r + _boundary_xcorr(x, extra, torch.arange(1, nblocks, device=x.device) * block, nlags)
    return r


def _boundary_xcorr(x: torch.Tensor, extra: torch.Tensor, starts: torch.Tensor, nlags: int) -> torch.Tensor:
    """The part of :func:`_lagged_xcorr` that straddles block boundaries: the products ``z[t + k] * x[t]`` with
    ``t`` before a boundary ``s`` (in ``starts``, ``>= nlags - 1``) and ``t + k`` at or after it. Blocks must be
    at least ``nlags - 1`` samples long (all but the last), so that no pair straddles two boundaries.

    Returns:
        ``(..., Q + E, Q, nlags)``.
    """
    nsampl = x.shape[-1]
    # sum_v before[v] * after[v + k - (L - 1)], before = x[s - L + 1 : s], after = z[s : s + L - 1]
    offs = torch.arange(nlags - 1, device=x.device)
    idx = starts[:, None] + offs  # (nbound, L - 1)
    before = x[..., idx - (nlags - 1)]  # (..., Q, nbound, L - 1)
    inside = idx < nsampl  # the last block may be shorter than L - 1
    idx = idx.clamp(max=nsampl - 1)
    after = torch.cat([x[..., idx], extra[..., idx]], dim=-3) * inside  # (..., M, nbound, L - 1)
    n2 = next_fast_len(2 * nlags - 2)
    # contiguous operands with the conjugate resolved: a strided/conjugate-view batched matmul falls off
    # the BLAS path on CPU and was the slowest step of the whole evaluation (same values either way)
    fa = torch.fft.rfft(after, n=n2).movedim(-1, -3).contiguous()  # (..., K2, M, nbound)
    fb = torch.fft.rfft(before, n=n2).movedim(-1, -3).conj().transpose(-1, -2).contiguous()
    # c[m] = sum_v after[v + m] before[v]
    c: torch.Tensor = torch.fft.irfft(torch.matmul(fa, fb).movedim(-3, -1), n=n2)
    lags = (torch.arange(nlags, device=x.device) - (nlags - 1)) % n2
    return c[..., lags]


def _block_toeplitz(r: torch.Tensor, nlags: int) -> torch.Tensor:
    """Gram matrix of delayed channels from their lagged correlations.

    ``r``: ``(..., P, P, L)`` with ``r[p, q, k] = <x_p(t + k), x_q(t)>``. Returns ``(..., P*L, P*L)`` with
    ``G[(p, a), (q, b)] = <x_p delayed by a, x_q delayed by b> = r[p, q, b - a]`` (``r[q, p, a - b]`` if
    ``a > b``), the layout of museval's ``_reshape_G``; exactly symmetric.
    """
    ext = torch.cat([r.transpose(-2, -3).flip(-1)[..., :-1], r], dim=-1)  # lag m at index L - 1 + m
    a = torch.arange(nlags, device=r.device)
    lag = (nlags - 1) + a[None, :] - a[:, None]  # [a, b] -> L - 1 + b - a
    g = ext[..., lag]  # (..., P, P, L, L)
    npch = r.shape[-2]
    return g.transpose(-3, -2).reshape(*r.shape[:-3], npch * nlags, npch * nlags)


def _solve(g: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """museval's ``solve(G + eps I, D)`` for symmetric positive semi-definite Gram matrices ``G``.

    Cholesky where ``G`` is clearly positive definite (same solution as museval's LU to rounding, twice as
    fast); otherwise LU as museval, and least squares (museval's ``lstsq`` fallback) where LU finds ``G``
    exactly singular, e.g. a mono stem stored as stereo (L = R). ``g`` is modified during the call and
    restored.
    """
    diag = torch.diagonal(g, dim1=-2, dim2=-1)
    g_diag = diag.clone()
    diag.add_(_EPS)  # G + eps I in place (a copy of G costs more than the additions), restored below
    try:
        chol, info = torch.linalg.cholesky_ex(g)
        pivots = torch.diagonal(chol, dim1=-2, dim2=-1).square()
        # a pivot near rounding level means G is (numerically) singular: leave those to LU/lstsq as museval
        ok = (info == 0) & (pivots.amin(dim=-1) > _CHOLESKY_RTOL * g_diag.amax(dim=-1))
        # two triangular solves (faster than cholesky_solve here)
        x: torch.Tensor = torch.linalg.solve_triangular(chol, d, upper=False)
        x = torch.linalg.solve_triangular(chol.mT, x, upper=True)
        del chol
        if bool(ok.all()):
            return x
        bad = ~ok
        ge = g[bad]  # G + eps I
        xb, info = torch.linalg.solve_ex(ge, d[bad])
        singular = info != 0
        if bool(singular.any()):
            gs, ds = ge[singular], d[bad][singular]
            gs.diagonal(dim1=-2, dim2=-1).copy_(g_diag[bad][singular])  # G itself, as museval's lstsq
            rcond = _EPS * g.shape[-1]  # numpy.linalg.lstsq's default cut-off (gelsd)
            if g.device.type == "cpu":
                xb[singular] = torch.linalg.lstsq(gs, ds, rcond=rcond, driver="gelsd").solution
            else:  # CUDA lstsq only has 'gels' (full rank): use the pseudo-inverse of the symmetric Gram matrix
                xb[singular] = torch.linalg.pinv(gs, rtol=rcond, hermitian=True) @ ds
        x[bad] = xb
        return x
    finally:
        diag.copy_(g_diag)


def _independent_channels(c0: torch.Tensor) -> torch.Tensor:
    """``(..., N, N)`` zero-lag Gram matrix -> ``(..., N)`` False for channels that are all zeros or exactly
    proportional (to rounding) to an earlier channel."""
    diag = torch.diagonal(c0, dim1=-2, dim2=-1)
    rho2 = c0.square() / (diag[..., :, None] * diag[..., None, :])  # squared correlation coefficients
    earlier = torch.ones(c0.shape[-1], c0.shape[-1], dtype=torch.bool, device=c0.device).tril(-1)
    dependent = ((rho2 > 1 - _PROPORTIONAL_TOL) & earlier).any(dim=-1)
    return ~dependent & (diag > 0)


def _solve_masked(g: torch.Tensor, d: torch.Tensor, keep: torch.Tensor, nlen: int) -> torch.Tensor:
    """:func:`_solve` restricted to the delayed copies of the channels in ``keep`` (``(..., N)``; ``g`` is
    ``(..., N*L, N*L)``); the filters of the other channels are zero."""
    if bool(keep.all()):
        return _solve(g, d)
    size = g.shape[-1]
    flat = keep.repeat_interleave(nlen, dim=-1).reshape(-1, size)  # (batch, N*L)
    gb, db = g.reshape(-1, size, size), d.reshape(-1, size, d.shape[-1])
    x = torch.zeros_like(db)
    patterns, which = torch.unique(flat, dim=0, return_inverse=True)
    for i, pattern in enumerate(patterns):
        sel = torch.nonzero(which == i).flatten()
        idx = torch.nonzero(pattern).flatten()
        if idx.numel():
            sub_g = gb[sel][:, idx][:, :, idx]
            x[sel[:, None], idx] = _solve(sub_g, db[sel][:, idx])
    return x.reshape(d.shape)


def _fit_filters(ref: torch.Tensor, est: torch.Tensor, filter_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Distortion filters fitted on ``ref``/``est`` ``(..., S, C, T)``.

    Returns:
        ``h_all``: ``(..., S_est, C_out, S*C_in, L)``, the filters projecting each estimate on all references;
        ``h_j``: ``(..., S_true, S_est, C_out, C_in, L)``, those projecting each estimate on each single
        reference.
    """
    nsrc, nchan = ref.shape[-3:-1]
    r = _lagged_xcorr(ref.flatten(-3, -2), est.flatten(-3, -2), filter_len)  # (..., 2PC, PC, L)
    return _filters_from_xcorr(r, nsrc, nchan)


def _filters_from_xcorr(r: torch.Tensor, nsrc: int, nchan: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_fit_filters` from the lagged correlations ``r`` ``(..., 2*S*C, S*C, L)`` of the reference
    channels then the estimate channels with the reference channels (:func:`_lagged_xcorr`)."""
    *batch, _, npch, nlen = r.shape
    g = _block_toeplitz(r[..., :npch, :, :], nlen)  # (..., PC*L, PC*L)
    # D[(i, ci, k), (j, c)] = <ref_{i,ci} delayed by k, est_{j,c}> = r[est (j,c), ref (i,ci), k]
    d = r[..., npch:, :, :].permute(*range(len(batch)), -2, -1, -3).reshape(*batch, npch * nlen, npch)
    # channels proportional to an earlier one (a mono stem stored as stereo, L = R) add nothing to the span of
    # the delayed references but make G singular: solve without them (museval's lstsq fallback gives the same
    # projection, much more slowly)
    c0 = r[..., :npch, :, 0]  # zero-lag Gram matrix of the reference channels
    keep = _independent_channels(c0)  # (..., PC)
    # per-source systems: diagonal blocks of G, rows of D of that source (all estimates as right-hand sides)
    sub = nchan * nlen
    gj = torch.stack([g[..., j * sub : (j + 1) * sub, j * sub : (j + 1) * sub] for j in range(nsrc)], dim=-3)
    h_all = _solve_masked(g, d, keep, nlen)  # rows (i, ci, k), columns (j, c)
    del g
    nb = len(batch)
    h_all = h_all.reshape(*batch, npch, nlen, nsrc, nchan)  # (..., S*C_in, L, S_est, C_out)
    h_all = h_all.permute(*range(nb), nb + 2, nb + 3, nb, nb + 1)  # (..., S_est, C_out, S*C_in, L)
    dj = d.unflatten(-2, (nsrc, sub))  # (..., S_true, C*L, S*C)
    c0j = torch.stack(
        [c0[..., j * nchan : (j + 1) * nchan, j * nchan : (j + 1) * nchan] for j in range(nsrc)], -3
    )
    h_j = _solve_masked(gj, dj, _independent_channels(c0j), nlen)  # (..., S_true, C_in*L, S_est*C_out)
    h_j = h_j.reshape(*batch, nsrc, nchan, nlen, nsrc, nchan)  # (..., S_t, C_in, L, S_e, C_out)
    h_j = h_j.permute(*range(nb), nb, nb + 3, nb + 4, nb + 1, nb + 2)  # (..., S_t, S_e, C_out, C_in, L)
    return h_all, h_j


# ---------------------------------------------------------------------------------------------------------
# framewise decomposition
