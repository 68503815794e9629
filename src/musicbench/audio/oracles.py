"""Oracle estimates: separations computed from the true sources, upper bounds for a model's scores."""

from __future__ import annotations

import torch

from musicbench.audio.stft import Stft


def ideal_ratio_mask(
    mixture: torch.Tensor,
    references: torch.Tensor,
    n_fft: int = 4096,
    hop_length: int = 1024,
    power: float = 1.0,
) -> torch.Tensor:
    """The ideal ratio mask (IRM) estimate of every source, as SiSEC's ``IRM1`` oracle (power 1).

    Source ``j``'s mask is ``|S_j|^p / sum_k |S_k|^p`` per channel, bin and frame (``S_k``: the STFT of
    reference ``k``); it multiplies the mixture's STFT (so the mixture's phase is kept) and the inverse
    STFT gives the estimate. Where every source is silent the mask is ``1 / sources``, so the masks always
    sum to one. The STFT is :class:`~musicbench.audio.stft.Stft` (Hann window, ``center=True``), the one of
    the mask separators: with their ``n_fft``/``hop_length`` this is the best estimate a real-valued mask
    of theirs can give (to the ratio-mask family's approximation of the optimum). Computed in float64.

    Args:
        mixture: ``(..., channels, samples)``.
        references: ``(..., sources, channels, samples)``, the true sources of ``mixture``.
        n_fft: FFT size in samples.
        hop_length: hop in samples.
        power: exponent ``p`` of the magnitudes (1: magnitude ratio; 2: the Wiener-like power ratio).

    Returns:
        ``(..., sources, channels, samples)`` estimates, in the dtype of ``mixture``.
    """
    if references.ndim < 3 or references.shape[:-3] + references.shape[-2:] != mixture.shape:
        raise ValueError(
            f"references (..., sources, channels, samples) {tuple(references.shape)} do not match the "
            f"mixture (..., channels, samples) {tuple(mixture.shape)}"
        )
    stft = Stft(n_fft, hop_length).to(mixture.device, torch.float64)
    spec = stft(mixture.double()).unsqueeze(-4)  # (..., 1, C, F, N)
    mags = stft(references.double()).abs().pow(power)  # (..., S, C, F, N)
    total = mags.sum(dim=-4, keepdim=True)
    mask = torch.where(
        total > 0, mags / total.clamp_min(torch.finfo(torch.float64).tiny), 1.0 / mags.shape[-4]
    )
    return stft.inverse(mask * spec, mixture.shape[-1]).to(mixture.dtype)
