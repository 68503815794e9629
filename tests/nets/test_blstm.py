import pytest
import torch

from musicbench.nets.blstm import BLSTM


@pytest.mark.parametrize("channels,outputs,frames", [(2, 1, 17), (1, 2, 5), (2, 2, 1)])
def test_blstm_shapes(channels, outputs, frames):
    net = BLSTM(num_bins=33, audio_channels=channels, outputs_per_bin=outputs, hidden_size=8, num_layers=2)
    y = net(torch.randn(3, channels, 33, frames))
    assert y.shape == (3, channels, outputs, 33, frames)


def test_blstm_starts_at_zero_and_learns():
    net = BLSTM(num_bins=9, audio_channels=1, hidden_size=4, num_layers=1)
    x = torch.randn(2, 1, 9, 6)
    assert torch.equal(net(x), torch.zeros(2, 1, 1, 9, 6))  # a residual model starts as the identity
    net(x).sum().backward()
    assert net.out.weight.grad.abs().sum() > 0


def test_blstm_is_bidirectional_over_frames():
    torch.manual_seed(0)
    net = BLSTM(num_bins=5, audio_channels=1, hidden_size=4, num_layers=1)
    torch.nn.init.normal_(net.out.weight)
    x = torch.randn(1, 1, 5, 10)
    x2 = x.clone()
    x2[..., -1] = torch.randn(1, 1, 5)  # change only the last frame
    diff = (net(x) - net(x2)).abs()
    assert diff[..., 0].sum() > 0  # the first frame's output sees the future


def test_blstm_rejects_wrong_input_size():
    with pytest.raises(ValueError, match="built for 2 channels x 33 bins"):
        BLSTM(num_bins=33)(torch.randn(1, 2, 32, 4))


@pytest.mark.gpu
def test_cuda_matches_cpu(cuda_matches_cpu):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.manual_seed(0)
    net = BLSTM(num_bins=33, audio_channels=2, outputs_per_bin=2, hidden_size=16, num_layers=2).double()
    torch.nn.init.normal_(net.out.weight, std=0.1)  # the output layer starts at zero
    x = torch.randn(3, 2, 33, 20, dtype=torch.float64)
    cuda_matches_cpu(net, x, atol=1e-10)
