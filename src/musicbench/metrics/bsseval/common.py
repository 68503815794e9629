"""Constants and helpers shared by the BSSEval modules: memory budgets, tolerances, frame batching, buffers."""

from __future__ import annotations

import numpy as np
import torch

_EPS = float(np.finfo(np.float64).eps)  # museval adds eps * I to the Gram matrices before solving
# Bytes of one intermediate tensor (a batch of frame or block spectra). On CPU small batches are faster: the
# allocator hands out fresh pages for large tensors and page-faulting them costs more than the arithmetic.

_CHUNK_BYTES = {"cpu": 16 * 2**20, "cuda": 512 * 2**20}
# Bytes of one (bins, frames, channels) complex tensor in the tiled path's loops over batches of bins

_BINS_BYTES = {"cpu": 16 * 2**20, "cuda": 512 * 2**20}

_SPECTRA_BYTES = 2 * 2**30  # at most this many bytes of frame spectra are kept (v4, frames tiling the signal)

_SOLVE_BUDGET = 1024 * 2**20  # bytes of Gram matrices per batch of v3 frames

_CHOLESKY_RTOL = 1e-12  # smallest Cholesky pivot^2 / largest diagonal entry of G accepted as regular

_PROPORTIONAL_TOL = 1e-12  # 1 - rho^2 below which two reference channels count as proportional (L = R)

_XCORR_NFFT = 16384  # FFT size of the blocks of the long correlations

_AXES = ("source", "channel", "sample")  # named in the errors on non-finite input


def _chunk_bytes(device: torch.device) -> int:
    return _CHUNK_BYTES.get(device.type, _CHUNK_BYTES["cuda"])


def _bins_bytes(device: torch.device) -> int:
    return _BINS_BYTES.get(device.type, _BINS_BYTES["cuda"])


def _take_frames(frames: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``(S, C, nwin, win)`` frames -> ``(F, S, C, win)`` for the frame indices ``idx`` (a view for a range)."""
    first, last = int(idx[0]), int(idx[-1])
    if last - first + 1 == idx.numel():
        return frames[:, :, first : last + 1].permute(2, 0, 1, 3)
    return frames[:, :, idx].permute(2, 0, 1, 3)


def _chunks(idx: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [idx[i : i + size] for i in range(0, idx.numel(), size)]


class _Workspace:
    """Reusable buffers, by name. On CPU, reusing memory across batches avoids page-faulting a fresh large
    allocation for every intermediate tensor, which costs more than the arithmetic on it."""

    def __init__(self) -> None:
        self._bufs: dict[str, torch.Tensor] = {}

    def __call__(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        numel = int(np.prod(shape, dtype=np.int64))
        buf = self._bufs.get(name)
        if buf is None or buf.numel() < numel or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._bufs[name] = torch.empty(numel, dtype=like.dtype, device=like.device)
        return buf[:numel].view(shape)


def _rfft_padded(x: torch.Tensor, nfft: int, ws: _Workspace, name: str) -> torch.Tensor:
    """``torch.fft.rfft(x, n=nfft)`` for ``x`` ``(..., n)``, ``n <= nfft``, with the zero-padded input in the
    reused buffer ``name``: only the padding is zeroed, where ``n=nfft`` fills a whole new tensor before copying
    ``x`` into it. (``out=`` is not used: it computes into a temporary and copies.)"""
    n = x.shape[-1]
    buf = ws(name, (*x.shape[:-1], nfft), x)
    buf[..., n:].zero_()
    buf[..., :n].copy_(x)
    out: torch.Tensor = torch.fft.rfft(buf)
    return out
