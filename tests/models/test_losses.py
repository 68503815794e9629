import pytest
import torch

from musicbench.models.losses import MultiResolutionStftLoss, SpectralL1


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
