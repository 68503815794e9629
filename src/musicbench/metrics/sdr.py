"""Signal-level separation metrics as pure torch functions (any device, batched over leading dims)."""

from __future__ import annotations

import torch

from musicbench.metrics._checks import check_pair

MDX_EPS = 1e-7  # the delta of the MDX/SDX challenge's global SDR (added to numerator and denominator)


def global_sdr(reference: torch.Tensor, estimate: torch.Tensor, eps: float = MDX_EPS) -> torch.Tensor:
    """Global SDR of the Music Demixing challenges, in dB.

    ``10 * log10((sum s^2 + eps) / (sum (s - s_hat)^2 + eps))`` over channels and samples of the whole track.

    Args:
        reference: ``(..., channels, samples)``.
        estimate: same shape as ``reference``.

    Returns:
        ``(...)`` SDR in dB, computed in float64.
    """
    _check_shapes(reference, estimate)
    ref, est = reference.double(), estimate.double()
    num = ref.square().sum(dim=(-2, -1)) + eps
    den = (ref - est).square().sum(dim=(-2, -1)) + eps
    return 10.0 * torch.log10(num / den)


def snr(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio in dB per channel, averaged over channels.

    ``10 * log10(sum s^2 / sum (s - s_hat)^2)`` for each channel with no regulariser, so a silent
    reference gives ``-inf``/``nan`` rather than a number that hides the problem; ``+inf`` for a perfect
    estimate.

    Args:
        reference: ``(..., channels, samples)``.
        estimate: same shape as ``reference``.

    Returns:
        ``(...)`` SNR in dB, float64.
    """
    _check_shapes(reference, estimate)
    ref, est = reference.double(), estimate.double()
    num = ref.square().sum(dim=-1)
    den = (ref - est).square().sum(dim=-1)
    return (10.0 * torch.log10(num / den)).mean(dim=-1)


def si_sdr(reference: torch.Tensor, estimate: torch.Tensor, zero_mean: bool = True) -> torch.Tensor:
    """Scale-invariant SDR (Le Roux et al. 2019) in dB per channel, averaged over channels.

    The reference is rescaled by ``alpha = <s_hat, s> / <s, s>`` before measuring the error, so a gain
    applied to the estimate does not change the score:
    ``10 * log10(|alpha s|^2 / |alpha s - s_hat|^2)``.

    Args:
        reference: ``(..., channels, samples)``.
        estimate: same shape as ``reference``.
        zero_mean: remove each channel's mean first (the paper's definition).

    Returns:
        ``(...)`` SI-SDR in dB, float64. A silent reference channel gives NaN.
    """
    _check_shapes(reference, estimate)
    ref, est = reference.double(), estimate.double()
    if zero_mean:
        ref = ref - ref.mean(dim=-1, keepdim=True)
        est = est - est.mean(dim=-1, keepdim=True)
    alpha = (est * ref).sum(dim=-1, keepdim=True) / ref.square().sum(dim=-1, keepdim=True)
    target = alpha * ref
    ratio = target.square().sum(dim=-1) / (target - est).square().sum(dim=-1)
    return (10.0 * torch.log10(ratio)).mean(dim=-1)


def _check_shapes(reference: torch.Tensor, estimate: torch.Tensor) -> None:
    """Same shape ``(..., channels, samples)``, not empty, finite; else ``ValueError`` naming the argument."""
    if reference.shape != estimate.shape:
        raise ValueError(
            f"reference {tuple(reference.shape)} and estimate {tuple(estimate.shape)} differ in shape"
        )
    if reference.ndim < 2:
        raise ValueError(f"expected (..., channels, samples), got shape {tuple(reference.shape)}")
    check_pair(reference, estimate)
