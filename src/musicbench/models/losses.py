"""Training losses, configured with ``_target_``.

- Regression losses on waveforms ``(batch, channels, samples)``: each maps ``(estimate, reference)`` of
  the same shape to a scalar. The time-domain L1 is ``torch.nn.L1Loss`` itself
  (``_target_: torch.nn.L1Loss``).
- Adversarial losses on critic scores (``critic(real, fake)``, ``generator(fake)``) and the WGAN-GP
  gradient penalty, for :class:`~musicbench.models.adversarial.AdversarialRestorer`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


# ----------------------------------------------------------------------------------------------------
# Adversarial losses: ``critic(real_scores, fake_scores)`` and ``generator(fake_scores)`` on patch scores.


class WassersteinLoss:
    """WGAN critic/generator losses (Arjovsky et al. 2017); pair with a gradient penalty (WGAN-GP)."""

    def critic(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return fake.mean() - real.mean()

    def generator(self, fake: torch.Tensor) -> torch.Tensor:
        return -fake.mean()


class HingeLoss:
    """Hinge losses (Lim & Ye 2017; as in SAGAN / BigGAN)."""

    def critic(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()

    def generator(self, fake: torch.Tensor) -> torch.Tensor:
        return -fake.mean()


class LeastSquaresLoss:
    """Least-squares GAN losses (Mao et al. 2017): real -> 1, fake -> 0."""

    def critic(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()

    def generator(self, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((fake - 1) ** 2).mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]],
    condition: torch.Tensor,
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): ``E[(||grad_x D(c, x)||_2 - 1)^2]`` at random interpolates
    ``x = e real + (1 - e) fake``, ``e ~ U(0, 1)`` per example; ``D`` is the mean of the patch scores.

    ``real``/``fake``: ``(B, ...)`` critic inputs; returns a scalar with a graph to the critic's weights.
    """
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator, device=real.device)
    mixed = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)
    scores, _ = critic(condition, mixed)
    (grad,) = torch.autograd.grad(scores.flatten(1).mean(1).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
