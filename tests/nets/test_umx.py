import functools

import pytest
import torch

from musicbench.models.separation import MaskSeparator
from musicbench.nets.umx import OpenUnmix


@pytest.mark.parametrize("channels,sources,frames", [(2, 4, 17), (1, 2, 3), (2, 1, 1)])
def test_umx_shapes_and_masks_are_non_negative(channels, sources, frames):
    net = OpenUnmix(in_channels=channels, out_channels=sources * channels, num_bins=33, hidden_size=8).eval()
    with torch.no_grad():
        y = net(torch.rand(3, channels, 33, frames))
    assert y.shape == (3, sources * channels, 33, frames)
    assert y.min() >= 0 and torch.isfinite(y).all()
    assert y.max() > 0  # ReLU masks, not all cut off


def test_umx_is_open_unmix_sized():
    """Open-Unmix's layer sizes per source; the parameter count is that of its formula."""
    c, f, h = 2, 1487, 512
    net = OpenUnmix(in_channels=c, out_channels=4 * c, num_bins=f, hidden_size=h)
    branch = net.branches[0]
    assert len(net.branches) == 4
    assert branch.lstm.hidden_size == h // 2 and branch.lstm.num_layers == 3 and branch.lstm.bidirectional
    assert branch.fc2.in_features == 2 * h  # the skip connection: BLSTM output and input concatenated
    # Per direction and layer: 4 gates over input + hidden + 2 biases.
    lstm = 2 * 3 * 4 * (h // 2) * (h + h // 2 + 2)
    dense = c * f * h + 2 * h * h + h * c * f
    norms = 2 * (h + h + c * f)
    scaling = 4 * f
    per_source = lstm + dense + norms + scaling
    assert sum(p.numel() for p in branch.parameters()) == per_source
    assert sum(p.numel() for p in net.parameters()) == 4 * per_source
    # Open-Unmix's ~8.9M per target: its last dense layer, norm and output scaling span all 2049 bins.
    assert 8.85e6 < per_source + (2049 - f) * (h * c + 2 * c + 2) < 8.95e6


def test_umx_sources_are_independent_networks():
    torch.manual_seed(0)
    net = OpenUnmix(in_channels=1, out_channels=2, num_bins=9, hidden_size=4)
    net(torch.rand(2, 1, 9, 6))[:, 0].sum().backward()  # source 0's mask only
    assert net.branches[0].fc1.weight.grad.abs().sum() > 0
    assert not net.branches[1].fc1.weight.grad.any()  # zeros through the concatenation


def test_umx_is_bidirectional_over_frames():
    torch.manual_seed(0)
    net = OpenUnmix(in_channels=1, out_channels=1, num_bins=5, hidden_size=4, dropout=0.0).eval()
    x = torch.rand(1, 1, 5, 10)
    x2 = x.clone()
    x2[..., -1] = torch.rand(1, 1, 5)  # change only the last frame
    with torch.no_grad():
        assert (net(x) - net(x2))[..., 0].abs().sum() > 0  # the first frame's mask sees the future


@pytest.mark.parametrize(
    "kwargs", [dict(out_channels=3), dict(hidden_size=7), dict(num_layers=0), dict(num_bins=0)]
)
def test_umx_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        OpenUnmix(**{"in_channels": 2, "out_channels": 4, "num_bins": 8, **kwargs})


def test_umx_rejects_wrong_input_size():
    with pytest.raises(ValueError, match="built for 2 channels x 33 bins"):
        OpenUnmix(num_bins=33)(torch.rand(1, 2, 32, 4))


def test_separator_with_umx_learns():
    """A few Adam steps of the separation model around the network lower its loss on a fixed batch."""
    torch.manual_seed(0)
    model = MaskSeparator(
        functools.partial(OpenUnmix, hidden_size=16, dropout=0.0),
        ["a", "b"],
        optimizer=functools.partial(torch.optim.Adam, lr=1e-2),
        n_fft=256,
        hop_length=64,
        max_bin=64,
        sample_rate=8000,
    )
    assert isinstance(model.net, OpenUnmix) and model.net.num_bins == 64
    t = torch.arange(4000) / 8000
    a = 0.3 * torch.sin(2 * torch.pi * 220 * t) * torch.ones(2, 2, 1)  # (batch, channels, samples)
    b = 0.1 * torch.randn(2, 2, 4000, generator=torch.Generator().manual_seed(1))
    targets = torch.stack([a, b], dim=1)  # (batch, sources, channels, samples)
    optimizer = model.configure_optimizers()
    losses = []
    for _ in range(15):
        loss = model._loss(targets.sum(1), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0]
    with torch.no_grad():
        assert model.eval()(targets.sum(1)).shape == targets.shape


@pytest.mark.gpu
def test_cuda_matches_cpu(cuda_matches_cpu):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.manual_seed(0)
    # Dropout off (its draws differ between devices); training mode: batch norms on batch statistics.
    net = OpenUnmix(in_channels=2, out_channels=4, num_bins=33, hidden_size=16, dropout=0.0).double()
    x = torch.rand(3, 2, 33, 20, dtype=torch.float64)
    cuda_matches_cpu(net, x, atol=1e-10)
