import pytest
import torch
from torch import nn

from musicbench.models.losses import (
    HingeLoss,
    LeastSquaresLoss,
    MultiResolutionStftLoss,
    SpectralL1,
    WassersteinLoss,
    gradient_penalty,
)


@pytest.mark.parametrize(
    "loss",
    [SpectralL1(256, 64), SpectralL1(256, 64, log=False), MultiResolutionStftLoss(((128, 32), (256, 64)))],
)
def test_losses_are_zero_on_the_reference_and_grow_with_the_error(loss):
    torch.manual_seed(0)
    ref = torch.randn(2, 2, 4000)
    noise = torch.randn_like(ref)
    assert float(loss(ref, ref)) == pytest.approx(0.0, abs=1e-6)
    small, large = loss(ref + 0.01 * noise, ref), loss(ref + 0.3 * noise, ref)
    assert 0 < small < large


def test_log_loss_sees_a_removed_quiet_band():
    # A band 40 dB down barely changes a linear-magnitude loss but dominates a log-magnitude one.
    t = torch.arange(8000) / 8000
    loud = torch.sin(2 * torch.pi * 200 * t)[None, None]
    quiet = 0.01 * torch.sin(2 * torch.pi * 3000 * t)[None, None]
    ref = loud + quiet
    lin, log = SpectralL1(256, 64, log=False), SpectralL1(256, 64, log=True)
    assert log(loud, ref) / log(ref + 0.01 * loud, ref) > lin(loud, ref) / lin(ref + 0.01 * loud, ref)


class _LinearCritic(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = w

    def forward(self, cond, x):
        return (x * self.w).flatten(1).sum(1).view(-1, 1, 1, 1), []


def test_gradient_penalty_of_a_linear_critic():
    w = torch.randn(1, 2, 3, 4)
    real, fake = torch.randn(5, 2, 3, 4), torch.randn(5, 2, 3, 4)
    gp = gradient_penalty(_LinearCritic(w), real, real, fake)
    # the gradient of <w, x> is w everywhere, whatever the interpolate
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)


def test_gradient_penalty_is_taken_at_interpolates():
    class Quadratic(nn.Module):  # D = ||x||^2 / 2: gradient x, so the penalty depends on where it is taken
        def forward(self, cond, x):
            return 0.5 * (x**2).flatten(1).sum(1).view(-1, 1, 1, 1), []

    real, fake = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    gp = gradient_penalty(Quadratic(), real, real, fake, generator=torch.Generator().manual_seed(3))
    eps = torch.rand((4, 1, 1, 1), generator=torch.Generator().manual_seed(3))
    mixed = eps * real + (1 - eps) * fake
    expected = ((mixed.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("loss", [WassersteinLoss(), HingeLoss(), LeastSquaresLoss()])
def test_adversarial_losses_prefer_real_high_scores(loss):
    high, low = torch.full((4, 1, 2, 2), 2.0), torch.full((4, 1, 2, 2), -2.0)
    assert loss.critic(high, low) < loss.critic(low, high)
    assert loss.generator(high) < loss.generator(low)
