"""FFT helpers shared by metrics and filters: fast transform sizes and FFT convolution."""

from __future__ import annotations

import torch


def next_fast_len(n: int) -> int:
    """The smallest ``2^a 3^b 5^c >= n``: FFT lengths with only small prime factors are fast (CPU and CUDA)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def fft_convolve(x: torch.Tensor, h: torch.Tensor, n_out: int | None = None) -> torch.Tensor:
    """``(..., n_out)``: the first ``n_out`` samples (default ``T``) of the full linear convolution ``x * h``.

    ``x`` is ``(..., T)``, ``h`` is ``(..., L)``; leading dimensions broadcast. Pass ``n_out=T + L - 1`` for
    the full output (what ``np.convolve`` returns).
    """
    t, taps = x.shape[-1], h.shape[-1]
    n_out = t if n_out is None else n_out
    n_fft = next_fast_len(max(n_out, t + taps - 1))
    y: torch.Tensor = torch.fft.irfft(torch.fft.rfft(x, n=n_fft) * torch.fft.rfft(h, n=n_fft), n=n_fft)
    return y[..., :n_out]
