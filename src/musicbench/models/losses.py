"""Regression losses on waveforms ``(batch, channels, samples)``, configured with ``_target_``.

Each loss maps ``(estimate, reference)`` of the same shape to a scalar. The time-domain L1 is
``torch.nn.L1Loss`` itself (``_target_: torch.nn.L1Loss``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from musicbench.audio.stft import Stft


class SpectralL1(nn.Module):
    """Mean absolute difference of STFT magnitudes, or of their logs (``log=True``).

    A log-magnitude loss weighs quiet high-frequency bins (what MP3 removes) as much as loud low ones.

    Args:
        n_fft, hop_length: STFT size and hop in samples.
        log: compare ``log(|X| + eps)`` instead of ``|X|``.
        eps: magnitude floor of the log.
    """

    def __init__(self, n_fft: int = 1024, hop_length: int = 256, log: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.stft, self.log, self.eps = Stft(n_fft, hop_length), log, eps

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        est, ref = self.stft(estimate).abs(), self.stft(reference).abs()
        if self.log:
            est, ref = torch.log(est + self.eps), torch.log(ref + self.eps)
        return (est - ref).abs().mean()


class MultiResolutionStftLoss(nn.Module):
    """Multi-resolution STFT loss (Yamamoto et al. 2020, Parallel WaveGAN): spectral convergence plus
    log-magnitude L1, averaged over several STFT sizes.

    Args:
        resolutions: ``[n_fft, hop_length]`` pairs in samples.
        eps: magnitude floor of the log.
    """

    def __init__(
        self, resolutions: Sequence[Sequence[int]] = ((512, 128), (1024, 256), (2048, 512)), eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.stfts = nn.ModuleList(Stft(int(n), int(h)) for n, h in resolutions)
        self.eps = eps

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        total = estimate.new_zeros(())
        for stft in self.stfts:
            est, ref = stft(estimate).abs(), stft(reference).abs()
            convergence = torch.linalg.vector_norm(ref - est) / torch.linalg.vector_norm(ref).clamp_min(
                self.eps
            )
            log_mag = (torch.log(est + self.eps) - torch.log(ref + self.eps)).abs().mean()
            total = total + convergence + log_mag
        return total / len(self.stfts)
