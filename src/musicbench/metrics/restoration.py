"""Restoration metrics as pure torch functions (any device, batched over leading dimensions).

SNR and SI-SDR are those of :mod:`musicbench.metrics.sdr` (re-exported here). The log-spectral distance
(LSD) compares log power spectra, so it sees what MP3 removes (the band above the encoder's low-pass,
holes in the spectrum) even where those bands carry little energy and barely move the SNR. With
``min_freq`` set to the codec's cut-off it measures only the band a restorer has to re-create.

The improvement of a metric over the degraded input is :func:`improvement`; the evaluation runner reports
it as the difference to its input baseline.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from musicbench.metrics._checks import check_pair
from musicbench.metrics.sdr import si_sdr, snr

__all__ = ["improvement", "log_spectral_distance", "si_sdr", "snr"]

# Power floor in dB re full scale, added before the log: bins far below it count as silent (MP3 zeroes whole
# bands; without a floor their log power is -inf, and the LSD would measure only how deep the zeros are).
FLOOR_DB = -100.0


def log_spectral_distance(
    reference: torch.Tensor,
    estimate: torch.Tensor,
    sample_rate: int,
    n_fft: int = 2048,
    hop_length: int = 512,
    min_freq: float = 0.0,
    max_freq: float | None = None,
    framewise: bool = False,
    floor_db: float = FLOOR_DB,
) -> torch.Tensor:
    """Log-spectral distance in dB between two signals.

    Per channel and STFT frame (Hann window, ``center=True`` with reflection padding), the root mean
    square over frequency bins ``min_freq <= f <= max_freq`` of ``10 log10(P_ref + floor) -
    10 log10(P_est + floor)``, with ``P = |STFT / sum(window)|^2`` (a full-scale sine peaks at -6 dB) and
    ``floor = 10^(floor_db / 10)``. Then the mean over frames (unless ``framewise``) and over channels.
    Lower is better; 0 for identical signals.

    Args:
        reference: ``(..., channels, samples)`` clean audio.
        estimate: same shape.
        sample_rate: Hz (to convert ``min_freq``/``max_freq`` to bins).
        n_fft, hop_length: STFT size and hop in samples.
        min_freq, max_freq: band in Hz (inclusive); ``max_freq=None`` is the Nyquist frequency.
        framewise: return per-frame values (averaged over channels) instead of their mean.
        floor_db: power floor in dB re full scale added before the log; bins far below it count as silent.

    Returns:
        ``(...)`` LSD in dB (``(..., frames)`` with ``framewise``), float64.
    """
    if reference.shape != estimate.shape or reference.ndim < 2:
        raise ValueError(
            f"expected reference and estimate of one shape (..., channels, samples), got "
            f"{tuple(reference.shape)} and {tuple(estimate.shape)}"
        )
    check_pair(reference, estimate)
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
    top = sample_rate / 2 if max_freq is None else max_freq
    band = (freqs >= min_freq) & (freqs <= top)
    if not band.any():
        raise ValueError(
            f"no STFT bin in [{min_freq}, {top}] Hz at {sample_rate} Hz with n_fft={n_fft}; widen the band"
        )
    window = torch.hann_window(n_fft, dtype=torch.float64, device=reference.device)
    floor = 10.0 ** (floor_db / 10.0)

    def log_power(x: torch.Tensor) -> torch.Tensor:
        flat = x.double().reshape(-1, x.shape[-1])
        spec = torch.stft(flat, n_fft, hop_length, window=window, center=True, return_complex=True)
        power = (spec[:, band.to(spec.device)].abs() / window.sum()).square()
        return 10.0 * torch.log10(power + floor).reshape(*x.shape[:-1], -1, spec.shape[-1])

    diff = log_power(reference) - log_power(estimate)  # (..., C, bins, frames)
    per_frame = diff.square().mean(dim=-2).sqrt()  # (..., C, frames)
    per_frame = per_frame.mean(dim=-2)  # (..., frames)
    return per_frame if framewise else per_frame.mean(dim=-1)


def improvement(
    metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    reference: torch.Tensor,
    estimate: torch.Tensor,
    degraded: torch.Tensor,
) -> torch.Tensor:
    """``metric(reference, estimate) - metric(reference, degraded)``: the change brought by the restorer.

    Positive is better for SNR/SI-SDR; negative is better for LSD (a distance). Shapes as for ``metric``.
    """
    return metric(reference, estimate) - metric(reference, degraded)
