import pytest
import torch

from musicbench.nets.unet import UNet


@pytest.mark.parametrize("freq,frames", [(512, 130), (64, 64), (100, 37)])
def test_unet_output_shape_and_range(freq, frames):
    net = UNet(in_channels=2, out_channels=8, depth=4, base_channels=4).eval()
    x = torch.rand(3, 2, freq, frames)
    y = net(x)
    assert y.shape == (3, 8, freq, frames)
    assert y.min() >= 0 and y.max() <= 1


def test_unet_default_is_spleeter_sized():
    net = UNet(in_channels=2, out_channels=2)
    convs = [b.conv for b in net.encoder]
    assert [c.out_channels for c in convs] == [16, 32, 64, 128, 256, 512]
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in convs)
    drops = [not isinstance(b.drop, torch.nn.Identity) for b in net.decoder]
    assert drops == [True, True, True, False, False]


def test_unet_gradients_flow_to_first_layer():
    net = UNet(in_channels=1, out_channels=1, depth=3, base_channels=4)
    net(torch.rand(2, 1, 32, 32)).mean().backward()
    assert net.encoder[0].conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs", [dict(depth=0), dict(kernel_size=4)])
def test_unet_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        UNet(**kwargs)


@pytest.mark.gpu
def test_cuda_matches_cpu(cuda_matches_cpu):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.manual_seed(0)
    # float64: cuDNN's TF32 convolutions would otherwise blur the comparison to ~1e-3.
    net = UNet(in_channels=2, out_channels=8, depth=4, base_channels=4, dropout=0.0).double()
    x = torch.rand(2, 2, 100, 37, dtype=torch.float64)
    cuda_matches_cpu(net, x, atol=1e-9)
