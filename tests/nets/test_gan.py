import pytest
import torch

from musicbench.audio.representations import CompressedComplex, LogMagnitude
from musicbench.nets.gan import SpectralCritic, SpectralGenerator


def _gen(z_dim=8, noise_levels=None, **kw):
    torch.manual_seed(0)
    net = SpectralGenerator(
        in_channels=4, out_channels=4, z_dim=z_dim, depth=3, base_channels=8, noise_levels=noise_levels, **kw
    )
    # the output layer starts at zero (identity residual): give it weights so z can show in the output
    torch.nn.init.normal_(net.head.weight, std=0.1)
    return net


def test_generator_shapes_and_noise_shapes():
    net = _gen()
    x = torch.randn(2, 4, 37, 21)  # not multiples of 2**depth: padded to 40 x 24
    assert net.noise_shapes(x.shape) == [(2, 8, 5, 3), (2, 8, 10, 6), (2, 8, 20, 12), (2, 8, 40, 24)]
    assert net(x).shape == x.shape
    with pytest.raises(ValueError, match="z must have shapes"):
        net(x, z=[torch.randn(2, 8, 4, 3)])
    bottleneck_only = _gen(noise_levels=1)
    assert bottleneck_only.noise_shapes(x.shape) == [(2, 8, 5, 3)]
    assert bottleneck_only(x, z=torch.randn(2, 8, 5, 3)).shape == x.shape  # one level: a tensor will do
    # the default: noise at the bottleneck only, the layout of checkpoints saved without noise_levels
    default = SpectralGenerator(in_channels=4, out_channels=4, z_dim=8, depth=3, base_channels=8)
    assert default.state_dict().keys() == bottleneck_only.state_dict().keys()
    assert default.bottleneck[0].in_channels == 32 + 8 and default.head.in_channels == 16
    with pytest.raises(ValueError, match="noise_levels"):
        _gen(noise_levels=5)  # depth 3 has 4 resolutions


@pytest.mark.parametrize("level", range(4))
def test_noise_at_every_level_reaches_the_output(level):
    """Changing z at one level alone changes the output: no level is cut off from the output."""
    net = _gen().eval()
    x = torch.randn(1, 4, 32, 16)
    z = net.draw_noise(x.shape, torch.Generator().manual_seed(1))
    changed = [t.clone() for t in z]
    changed[level] = torch.randn(changed[level].shape, generator=torch.Generator().manual_seed(2))
    a, b = net(x, z), net(x, changed)
    assert (a - b).abs().max() > 1e-4


def test_different_z_different_output_same_z_same_output():
    net = _gen().eval()
    x = torch.randn(1, 4, 32, 16)
    z1 = net.draw_noise(x.shape, torch.Generator().manual_seed(1))
    z2 = net.draw_noise(x.shape, torch.Generator().manual_seed(2))
    a, a2, b = net(x, z1), net(x, [t.clone() for t in z1]), net(x, z2)
    assert torch.equal(a, a2)
    assert (a - b).abs().max() > 1e-4
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(net(x, generator=g1), net(x, generator=g2))
    assert torch.equal(net(x, generator=torch.Generator().manual_seed(1)), a)  # levels drawn in order


def test_zero_z_dim_is_deterministic():
    net = _gen(z_dim=0).eval()
    x = torch.randn(2, 4, 32, 16)
    assert torch.equal(net(x), net(x))
    assert net.noise_shapes(x.shape) == []
    assert net.head.in_channels == 16 and net.bottleneck[0].in_channels == 32  # no noise channels anywhere


def test_untrained_generator_outputs_zero_residual():
    net = SpectralGenerator(in_channels=2, out_channels=2, z_dim=4, depth=2, base_channels=8)
    assert net(torch.randn(1, 2, 16, 8)).abs().max() == 0


def test_critic_shapes_features_and_gradients():
    critic = SpectralCritic(in_channels=4, depth=3, base_channels=8, spectral_norm=True)
    cond, cand = torch.randn(2, 4, 64, 32), torch.randn(2, 4, 64, 32, requires_grad=True)
    scores, feats = critic(cond, cand)
    assert scores.shape == (2, 1, 8, 4)
    assert [f.shape[1] for f in feats] == [8, 16, 32]
    scores.mean().backward()
    assert cand.grad is not None and cand.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="differ in shape"):
        critic(cond, cand[..., :16])


@pytest.mark.parametrize("alpha", [0.3, 0.5, 1.0])
def test_compressed_complex_round_trip(alpha):
    spec = torch.randn(2, 2, 33, 10, dtype=torch.complex64)
    spec[0, 0, :5] = 0  # exact silence stays finite and zero
    rep = CompressedComplex(alpha)
    feats = rep.encode(spec)
    assert feats.shape == (2, 4, 33, 10) and torch.isfinite(feats).all()
    torch.testing.assert_close(rep.decode(feats), spec, rtol=1e-4, atol=1e-5)
    # the magnitude is compressed: |feature pair| = |X|^alpha
    pair_mag = feats[:, 0::2].hypot(feats[:, 1::2])
    torch.testing.assert_close(pair_mag, spec.abs() ** alpha, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        CompressedComplex(0)


def test_log_magnitude_takes_the_reference_phase():
    spec = torch.randn(1, 2, 17, 6, dtype=torch.complex64)
    rep = LogMagnitude()
    out = rep.decode(rep.encode(spec), reference=spec)
    torch.testing.assert_close(out, spec, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="reference"):
        rep.decode(rep.encode(spec))


@pytest.mark.gpu
def test_generator_and_critic_cuda_match_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    gen = _gen().double().eval()
    torch.manual_seed(1)
    critic = SpectralCritic(in_channels=4, depth=3, base_channels=8).double()
    x = torch.randn(2, 4, 37, 21, dtype=torch.float64)
    # The noise is drawn once on the CPU and given to both: device generators draw different numbers.
    z = gen.draw_noise(x.shape, dtype=torch.float64)
    cpu_gen = gen(x, z=z)
    cpu_scores, cpu_feats = critic(x, cpu_gen)
    gen, critic = gen.cuda(), critic.cuda()
    gpu_gen = gen(x.cuda(), z=[t.cuda() for t in z])
    gpu_scores, gpu_feats = critic(x.cuda(), gpu_gen)
    assert gpu_gen.is_cuda and gpu_scores.is_cuda
    torch.testing.assert_close(gpu_gen.cpu(), cpu_gen, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(gpu_scores.cpu(), cpu_scores, rtol=1e-9, atol=1e-10)
    for ours, expected in zip(gpu_feats, cpu_feats, strict=True):
        torch.testing.assert_close(ours.cpu(), expected, rtol=1e-9, atol=1e-10)
