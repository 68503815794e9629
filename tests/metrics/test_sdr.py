import math

import numpy as np
import pytest
import torch

from musicbench.metrics.sdr import global_sdr, si_sdr, snr


def _mdx_reference_sdr(references, estimates):
    """The MDX21 challenge's code (numpy), computed here to check ours."""
    delta = 1e-7
    num = np.sum(np.square(references), axis=(1, 2)) + delta
    den = np.sum(np.square(references - estimates), axis=(1, 2)) + delta
    return 10 * np.log10(num / den)


def test_global_sdr_matches_mdx_definition():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(4, 2, 5000, generator=g)
    est = ref + 0.1 * torch.randn(4, 2, 5000, generator=g)
    # The MDX code uses (sources, samples, channels).
    expected = _mdx_reference_sdr(ref.transpose(1, 2).numpy(), est.transpose(1, 2).numpy())
    np.testing.assert_allclose(global_sdr(ref, est).numpy(), expected, rtol=1e-5)


def test_global_sdr_known_values():
    ref = torch.ones(1, 2, 100)
    assert global_sdr(ref, 0.9 * ref).item() == pytest.approx(20.0, abs=1e-4)
    assert global_sdr(ref, torch.zeros_like(ref)).item() == pytest.approx(0.0, abs=1e-6)
    # Silent reference and silent estimate: the epsilon gives 0 dB instead of NaN, as in MDX.
    assert global_sdr(torch.zeros(1, 2, 10), torch.zeros(1, 2, 10)).item() == 0.0


def test_snr_per_channel_mean_and_batched():
    ref = torch.ones(3, 2, 100)
    est = ref.clone()
    est[:, 0] *= 0.9  # 20 dB
    est[:, 1] *= 0.99  # 40 dB
    out = snr(ref, est)
    assert out.shape == (3,)
    torch.testing.assert_close(out, torch.full((3,), 30.0, dtype=torch.float64), atol=1e-4, rtol=0)
    assert math.isinf(snr(ref, ref)[0].item())


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="differ in shape"):
        global_sdr(torch.zeros(1, 2, 10), torch.zeros(1, 2, 11))


def test_si_sdr_is_scale_invariant_and_matches_orthogonal_noise():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(3, 2, 8000, dtype=torch.float64, generator=g)
    noise = torch.randn(3, 2, 8000, dtype=torch.float64, generator=g)
    noise = noise - noise.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    # Make the noise orthogonal to the reference: then SI-SDR is exactly the energy ratio.
    noise = noise - (noise * ref).sum(-1, keepdim=True) / ref.square().sum(-1, keepdim=True) * ref
    noise = 0.1 * noise
    est = ref + noise
    expected = (10 * torch.log10(ref.square().sum(-1) / noise.square().sum(-1))).mean(-1)
    torch.testing.assert_close(si_sdr(ref, est), expected)
    torch.testing.assert_close(si_sdr(ref, 0.3 * est), expected)
    # Plain SNR is not scale invariant.
    assert (snr(ref, 0.3 * est) < expected - 5).all()


def test_si_sdr_of_silent_reference_is_nan():
    assert math.isnan(si_sdr(torch.zeros(1, 2, 100), torch.ones(1, 2, 100))[0].item())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("metric", [global_sdr, snr, si_sdr], ids=["global_sdr", "snr", "si_sdr"])
def test_cuda_matches_cpu(metric):
    g = torch.Generator().manual_seed(3)
    ref = torch.randn(3, 4, 2, 8000, generator=g)
    est = ref + 0.3 * torch.randn(3, 4, 2, 8000, generator=g)
    est[0, 0] = ref[0, 0]  # a perfect estimate: +inf (SNR, SI-SDR) on both devices
    cpu = metric(ref, est)
    gpu = metric(ref.cuda(), est.cuda())
    assert gpu.is_cuda and gpu.dtype == torch.float64 and gpu.shape == (3, 4)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-10, atol=1e-10)
