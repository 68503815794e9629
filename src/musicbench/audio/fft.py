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


SHORT_FILTER = 1024  # taps up to which CPU convolutions use overlap-add


def fft_convolve(x: torch.Tensor, h: torch.Tensor, n_out: int | None = None) -> torch.Tensor:
    """``(..., n_out)``: the first ``n_out`` samples (default ``T``) of the full linear convolution ``x * h``.

    ``x`` is ``(..., T)``, ``h`` is ``(..., L)``; leading dimensions broadcast. Pass ``n_out=T + L - 1`` for
    the full output (what ``np.convolve`` returns).
    """
    t, taps = x.shape[-1], h.shape[-1]
    n_out = t if n_out is None else n_out
    if (
        x.device.type == "cpu"
        and h.device.type == "cpu"
        and taps <= SHORT_FILTER < t
        and n_out <= t + taps - 1
    ):
        # A short filter on a long CPU signal: overlap-add (scipy) transforms blocks of a few filter
        # lengths instead of the whole signal (a 141-tap NAL-R on 30 s: ~5x faster than one long FFT).
        import numpy as np
        import scipy.signal

        shape = tuple(np.broadcast_shapes(tuple(x.shape[:-1]), tuple(h.shape[:-1])))
        xs = x.expand(*shape, t).numpy()
        hs = h.expand(*shape, taps).numpy()
        full = scipy.signal.oaconvolve(xs, hs, axes=-1) if shape else np.convolve(xs, hs)
        return torch.from_numpy(np.ascontiguousarray(full[..., :n_out]))
    n_fft = next_fast_len(max(n_out, t + taps - 1))
    y: torch.Tensor = torch.fft.irfft(torch.fft.rfft(x, n=n_fft) * torch.fft.rfft(h, n=n_fft), n=n_fft)
    return y[..., :n_out]
