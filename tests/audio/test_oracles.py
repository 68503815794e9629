import pytest
import torch

from musicbench.audio.oracles import ideal_ratio_mask
from musicbench.metrics.sdr import global_sdr

SR = 16000


def _sines(*freqs: float, seconds: float = 1.0) -> torch.Tensor:
    """``(sources, 2, samples)``: one stereo sinusoid per source."""
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    return torch.stack([0.5 * torch.sin(2 * torch.pi * f * t).expand(2, -1) for f in freqs])


def test_irm_recovers_non_overlapping_sinusoids():
    refs = _sines(440.0, 3000.0)  # 164 bins apart at n_fft=1024: no shared time-frequency bins
    est = ideal_ratio_mask(refs.sum(0), refs, n_fft=1024, hop_length=256)
    assert est.shape == refs.shape and est.dtype == refs.dtype
    # 40.7 dB over the whole signal: the only error is at the two ends, where the STFT's reflect padding
    # kinks the sinusoids and spreads them over all bins; one window away from the ends, 105 dB.
    assert (global_sdr(refs, est) > 35).all()
    assert (global_sdr(refs[..., 1024:-1024], est[..., 1024:-1024]) > 90).all()
    # The mixture as the estimate of either source: 0 dB.
    assert (global_sdr(refs, refs.sum(0).expand_as(refs)) < 1).all()


def test_irm_of_overlapping_sources_is_a_partition_of_the_mixture():
    g = torch.Generator().manual_seed(0)
    refs = torch.randn(3, 2, 4000, generator=g, dtype=torch.float64)
    refs[2] = 0  # a silent source gets a silent estimate
    mixture = refs.sum(0)
    est = ideal_ratio_mask(mixture, refs, n_fft=256, hop_length=64)
    torch.testing.assert_close(est.sum(0), mixture, rtol=0, atol=1e-9)  # masks sum to one
    assert est[2].abs().max() < 1e-9
    assert (global_sdr(refs[:2], est[:2]) > global_sdr(refs[:2], mixture.expand(2, -1, -1))).all()


def test_irm_everywhere_silent_splits_evenly_and_batches():
    refs = torch.zeros(2, 4, 1, 1000)  # (batch, sources, channels, samples)
    refs[1] = _sines(300.0, 500.0, 700.0, 900.0, seconds=1000 / SR)[:, :1].float()
    est = ideal_ratio_mask(refs.sum(1), refs, n_fft=128, hop_length=32)
    assert est.shape == refs.shape and est.dtype == torch.float32
    assert est[0].abs().max() == 0  # a silent mixture: 1/4 of nothing
    single = ideal_ratio_mask(refs[1].sum(0), refs[1], n_fft=128, hop_length=32)
    torch.testing.assert_close(est[1], single)


def test_irm_power_two_sharpens_the_masks():
    g = torch.Generator().manual_seed(1)
    refs = torch.randn(2, 1, 4000, generator=g, dtype=torch.float64)
    refs[1] *= 0.3
    one, two = (ideal_ratio_mask(refs.sum(0), refs, 256, 64, power=p) for p in (1.0, 2.0))
    assert not torch.allclose(one, two)


def test_irm_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="do not match the mixture"):
        ideal_ratio_mask(torch.zeros(2, 100), torch.zeros(3, 1, 100))
