"""The BSSEval entry points: input checks, frames, v3 / v4 orchestration and the permutation choice."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from musicbench.audio.fft import next_fast_len
from musicbench.metrics._checks import check_audio
from musicbench.metrics.bsseval.common import (
    _AXES,
    _SOLVE_BUDGET,
    _SPECTRA_BYTES,
    _chunk_bytes,
    _chunks,
    _take_frames,
    _Workspace,
)
from musicbench.metrics.bsseval.energies import _filter_spectra, _frame_metrics, _v4_tiled
from musicbench.metrics.bsseval.filters import _fit_filters

METRICS = ("sdr", "isr", "sir", "sar")


def bsseval(
    references: torch.Tensor | np.ndarray,
    estimates: torch.Tensor | np.ndarray,
    win: int = 44100,
    hop: int = 44100,
    mode: str = "v4",
    bsseval_sources: bool = False,
    compute_permutation: bool = False,
    filter_len: int = 512,
    framewise: bool = True,
    padding: bool = True,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """BSSEval metrics per source and frame, as ``museval.evaluate`` / ``museval.metrics.bss_eval``.

    Args:
        references: ``(sources, channels, samples)`` true source images (torch or numpy); ``(sources,
            samples)`` is read as mono.
        estimates: ``(sources, channels, samples')`` estimated source images, same number of sources and
            channels. With ``padding`` (museval's default) estimates are zero-padded or truncated to the
            length of the references; otherwise the lengths must match.
        win: frame length in samples (sample-rate independent; museval's default is 44100 = 1 s at 44.1 kHz).
        hop: hop between frame starts in samples.
        mode: ``"v4"`` (filters fitted once on the whole track, as MUSDB/SiSEC 2018) or ``"v3"`` (filters
            fitted on each frame, as BSS Eval v3 and ``museval.evaluate(mode="v3")``).
        bsseval_sources: ``bss_eval_sources`` variant of BSS Eval v2/v3 (ISR is then NaN); museval's
            ``bsseval_sources_version``. ``False`` (images) is what ``museval.evaluate`` uses.
        compute_permutation: search the assignment of estimates to references maximising the mean SIR
            (over sources and frames in v4, per frame in v3), as museval's ``compute_permutation``;
            the chosen assignment is returned under ``"perm"``.
        filter_len: number of taps of the distortion filters (museval: 512).
        framewise: ``False`` evaluates the whole signal as one frame (museval's ``window=np.inf``).
        padding: pad/truncate estimates to the reference length (``museval.evaluate(padding=True)``).
        device: where to compute (default: the device of ``references`` if a tensor, else CPU).

    Returns:
        ``{"sdr", "isr", "sir", "sar"}`` -> ``(sources, frames)`` float64 tensors in dB on ``device``; NaN in
        silent frames (and for ISR with ``bsseval_sources``); ``+inf`` where an error energy is exactly 0.
        With ``compute_permutation`` also ``"perm"``: ``(sources, frames)`` int64, the estimate index
        assigned to each reference (``perm[j, t]``).

    Raises:
        ValueError: mismatched shapes, an unknown mode, empty input, NaN/±inf in ``references`` or
            ``estimates`` (the message names the argument, source, channel and sample), or a
            reference/estimate silent over the whole signal.
    """
    if mode not in ("v3", "v4"):
        raise ValueError(f"mode must be 'v3' or 'v4', got {mode!r}")
    if filter_len < 1:
        raise ValueError(f"filter_len must be >= 1, got {filter_len}")
    if framewise and (int(win) < 1 or int(hop) < 1):
        raise ValueError(f"win and hop must be positive sample counts, got win={win}, hop={hop}")
    ref, est = _prepare(references, estimates, padding, device)
    nsrc, nchan, nsampl = ref.shape
    # museval's silence rule works on the sum over channels
    ref_active, est_active = _active(ref), _active(est)  # (S, T)
    _check_not_silent(ref_active, "reference")
    _check_not_silent(est_active, "estimated")

    # framing (museval.metrics.Framing): full frames only, or one frame over the whole signal
    if framewise and int(win) < nsampl:
        win, hop = int(win), int(hop)
        nwin = (nsampl - win) // hop + 1
    else:
        win, hop, nwin = nsampl, nsampl, 1
    ref_frames = ref.unfold(-1, win, hop)  # (S, C, nwin, win) views
    est_frames = est.unfold(-1, win, hop)
    # a frame is silent if any reference or estimate is all zeros in it: (nwin,)
    silent = ~(
        ref_active.unfold(-1, win, hop).any(-1).all(0) & est_active.unfold(-1, win, hop).any(-1).all(0)
    )

    if compute_permutation:
        grid = torch.arange(nsrc, device=ref.device)
        pairs_t, pairs_e = grid.repeat_interleave(nsrc), grid.repeat(nsrc)  # all (true, estimate) pairs
    else:
        pairs_t = pairs_e = torch.arange(nsrc, device=ref.device)
    npairs = pairs_t.numel()
    out = torch.full((4, npairs, nwin), float("nan"), dtype=torch.float64, device=ref.device)

    active = torch.nonzero(~silent).flatten()
    nfft = next_fast_len(win + filter_len - 1)
    # frames per batch: keep each (bins, pairs, channels, frames) complex tensor within _CHUNK_BYTES
    frames_per_batch = max(1, _chunk_bytes(ref.device) // (16 * (nfft // 2 + 1) * nchan * max(nsrc, npairs)))
    ws = _Workspace()
    spectra_bytes = 16 * (nfft // 2 + 1) * 2 * nsrc * nchan * nwin
    if mode == "v4" and hop == win and (win >= filter_len or nwin == 1) and spectra_bytes <= _SPECTRA_BYTES:
        res = _v4_tiled(ref, est, win, nwin, filter_len, nfft, pairs_t, pairs_e, bsseval_sources)
        out[:, :, active] = res[:, :, active]
    elif mode == "v4":
        h_all, h_j = _fit_filters(ref, est, filter_len)
        hf_all, hf_j = _filter_spectra(h_all, h_j[pairs_t, pairs_e], nfft)
        for idx in _chunks(active, frames_per_batch):
            r, e = _take_frames(ref_frames, idx), _take_frames(est_frames, idx)  # (F, S, C, win)
            out[:, :, idx] = _frame_metrics(r, e, hf_all, hf_j, nfft, pairs_t, pairs_e, bsseval_sources, ws)
    else:
        size = nsrc * nchan * filter_len
        for idx in _chunks(active, max(1, min(frames_per_batch, _SOLVE_BUDGET // (3 * size * size * 8)))):
            r, e = _take_frames(ref_frames, idx), _take_frames(est_frames, idx)
            h_all, h_j = _fit_filters(r, e, filter_len)
            hf_all, hf_j = _filter_spectra(h_all, h_j[:, pairs_t, pairs_e], nfft)
            out[:, :, idx] = _frame_metrics(r, e, hf_all, hf_j, nfft, pairs_t, pairs_e, bsseval_sources, ws)

    if not compute_permutation:
        return dict(zip(METRICS, out.unbind(0), strict=True))
    return _select_permutation(out.reshape(4, nsrc, nsrc, nwin), per_frame_perm=(mode == "v3"))


def bsseval_metric(reference: torch.Tensor, estimate: torch.Tensor, **kwargs: Any) -> dict[str, torch.Tensor]:
    """BSSEval v4 images metrics as the evaluation runner expects: ``{"sdr", "isr", "sir", "sar"}``.

    Args:
        reference: ``(sources, channels, samples)``.
        estimate: ``(sources, channels, samples)``.
        **kwargs: overrides of :func:`bsseval` (defaults: ``win=hop=44100`` samples, ``mode="v4"``).

    Returns:
        ``{metric: (sources, frames)}`` float64 dB on the device of ``reference``; NaN marks silent frames
        (the runner takes the median over finite frames).
    """
    return bsseval(reference, estimate, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# input handling


def _prepare(
    references: torch.Tensor | np.ndarray,
    estimates: torch.Tensor | np.ndarray,
    padding: bool,
    device: torch.device | str | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    if device is None:
        device = references.device if isinstance(references, torch.Tensor) else torch.device("cpu")
    ref = torch.as_tensor(references).to(device=device, dtype=torch.float64)
    est = torch.as_tensor(estimates).to(device=device, dtype=torch.float64)
    if ref.ndim == 2:
        ref = ref[:, None]
    if est.ndim == 2:
        est = est[:, None]
    if ref.ndim != 3 or est.ndim != 3:
        raise ValueError(
            f"expected (sources, channels, samples), got {tuple(ref.shape)} and {tuple(est.shape)}"
        )
    _check_finite(ref, "references")
    _check_finite(est, "estimates")
    if padding and est.shape[-1] != ref.shape[-1]:
        nsampl = ref.shape[-1]
        est = (
            est[..., :nsampl]
            if est.shape[-1] > nsampl
            else torch.nn.functional.pad(est, (0, nsampl - est.shape[-1]))
        )
    if ref.shape != est.shape:
        raise ValueError(f"references {tuple(ref.shape)} and estimates {tuple(est.shape)} differ in shape")
    if ref.numel() == 0:
        raise ValueError(f"empty input of shape {tuple(ref.shape)}")
    return ref, est


def _check_finite(x: torch.Tensor, name: str) -> None:
    """:func:`check_audio` (empty or NaN/±inf input -> ``ValueError``), with a one-pass fast path: a NaN or ±inf
    sample makes the sum non-finite, so the elementwise test (several passes over a whole track) only runs when
    the sum is not finite (or overflows)."""
    if x.numel() == 0 or not bool(torch.isfinite(x.sum())):
        check_audio(x, name, _AXES)


def _active(x: torch.Tensor) -> torch.Tensor:
    """``(S, C, T)`` -> ``(S, T)``: the sum over channels is not zero. In pieces: the ``(S, T)`` sum of a whole
    track in one go is a fresh allocation whose page faults cost more than the additions."""
    out = torch.empty(x.shape[0], x.shape[-1], dtype=torch.bool, device=x.device)
    step = max(1, _chunk_bytes(x.device) // (8 * x.shape[0]))
    for t0 in range(0, x.shape[-1], step):
        torch.ne(x[..., t0 : t0 + step].sum(dim=1), 0, out=out[:, t0 : t0 + step])
    return out


def _check_not_silent(active: torch.Tensor, what: str) -> None:
    """museval's validation: a source whose sum over channels is zero everywhere is silent -> ValueError."""
    silent = ~active.any(dim=-1)
    if bool(silent.any()):
        idx = torch.nonzero(silent).flatten().tolist()
        raise ValueError(
            f"{what} source(s) {idx} are silent (all zeros, summed over channels) over the whole signal; "
            "BSSEval is undefined for silent sources (museval raises the same error)"
        )


def _select_permutation(s_r: torch.Tensor, per_frame_perm: bool) -> dict[str, torch.Tensor]:
    """museval's choice of the estimate assigned to each reference: the candidate permutation maximising the
    mean SIR (over sources and frames, or per frame in v3), with ``numpy.argmax`` semantics (a NaN mean wins,
    so frames with NaN select the first candidate, the identity).

    ``s_r``: ``(4, S_true, S_est, nwin)``.
    """
    nsrc, nwin = s_r.shape[1], s_r.shape[-1]
    cands = torch.tensor(list(itertools.permutations(range(nsrc))), device=s_r.device)  # (nperm, S)
    dum = torch.arange(nsrc, device=s_r.device)
    sir = s_r[2][dum, cands]  # (nperm, S, nwin)
    mean_sir = sir.mean(dim=1) if per_frame_perm else sir.mean(dim=(1, 2))[:, None]  # (nperm, nwin | 1)
    is_nan = mean_sir.isnan()
    first_nan = is_nan.to(torch.int64).argmax(dim=0)
    best = torch.where(is_nan.any(dim=0), first_nan, torch.nan_to_num(mean_sir, nan=0.0).argmax(dim=0))
    popt = cands[best].T  # (S, nwin | 1)
    popt = popt.expand(nsrc, nwin)
    tt = torch.arange(nwin, device=s_r.device)
    out = {name: s_r[m][dum[:, None], popt, tt[None, :]] for m, name in enumerate(METRICS)}
    out["perm"] = popt.contiguous()
    return out
