"""STFT helpers on ``(batch, channels, samples)`` tensors."""

from __future__ import annotations

import torch


class Stft(torch.nn.Module):
    """Hann-windowed STFT / iSTFT pair (``center=True``) on multichannel audio.

    Args:
        n_fft: FFT size in samples.
        hop_length: hop in samples.
    """

    window: torch.Tensor  # (n_fft,) Hann window, a non-persistent buffer

    def __init__(self, n_fft: int = 4096, hop_length: int = 1024) -> None:
        super().__init__()
        if hop_length <= 0 or hop_length > n_fft:
            raise ValueError(f"hop_length must be in (0, n_fft={n_fft}], got {hop_length}")
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., samples)`` -> complex ``(..., n_fft // 2 + 1, frames)``."""
        shape = x.shape
        spec = torch.stft(
            x.reshape(-1, shape[-1]),
            self.n_fft,
            self.hop_length,
            window=self.window,
            center=True,
            return_complex=True,
        )
        return spec.reshape(*shape[:-1], *spec.shape[-2:])

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """Complex ``(..., freq, frames)`` -> ``(..., length)`` samples."""
        shape = spec.shape
        x = torch.istft(
            spec.reshape(-1, *shape[-2:]),
            self.n_fft,
            self.hop_length,
            window=self.window,
            center=True,
            length=length,
        )
        return x.reshape(*shape[:-2], length)


def band_bins(n_fft: int, sample_rate: int, max_freq: float | None) -> int:
    """How many STFT bins (from bin 0) lie at or below ``max_freq`` Hz for an ``n_fft``-point STFT at
    ``sample_rate`` Hz: ``n_fft // 2 + 1`` when ``max_freq`` is ``None`` or reaches the Nyquist frequency.

    Bin ``k`` is at ``k * sample_rate / n_fft`` Hz. Used by the upsampling heads of hi-res restorers: the
    input of a model at ``sample_rate`` whose content comes from a lower rate ``r`` fills ``band_bins(n_fft,
    sample_rate, r / 2)`` bins.
    """
    total = n_fft // 2 + 1
    if max_freq is None:
        return total
    if max_freq <= 0:
        raise ValueError(f"max_freq must be > 0 Hz, got {max_freq}")
    return min(total, int(max_freq * n_fft / sample_rate) + 1)
