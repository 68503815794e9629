"""Hi-res restorers: the network sees the MP3's band, its head predicts every bin of the target rate, and
full tracks are joined at the target rate without clicks at the chunk seams."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from musicbench.audio.representations import CompressedComplex
from musicbench.audio.stft import band_bins
from musicbench.models.adversarial import AdversarialRestorer
from musicbench.models.losses import SpectralL1
from musicbench.models.restoration import SpectralRestorer, input_band_bins
from musicbench.nets.blstm import BLSTM
from musicbench.nets.gan import SpectralCritic, SpectralGenerator

TARGET, INPUT = 88200, 44100


def blstm_restorer(**kwargs) -> SpectralRestorer:
    torch.manual_seed(0)
    model = SpectralRestorer(
        net=functools.partial(BLSTM, hidden_size=16, num_layers=1),
        n_fft=512,
        hop_length=128,
        loss=SpectralL1(512, 128),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        sample_rate=TARGET,
        input_rate=INPUT,
        **{"chunk_seconds": 0.25, "context_seconds": 0.1, "crossfade_seconds": 0.05, **kwargs},
    )
    nn.init.normal_(model.net.out.weight, std=0.02)  # an untrained head outputs zeros: give it weights
    return model.eval()


def gan_restorer() -> AdversarialRestorer:
    torch.manual_seed(0)
    model = AdversarialRestorer(
        generator=functools.partial(SpectralGenerator, z_dim=2, depth=2, base_channels=4),
        critic=functools.partial(SpectralCritic, depth=2, base_channels=4),
        representation=CompressedComplex(0.5),
        n_fft=512,
        hop_length=128,
        sample_rate=TARGET,
        input_rate=INPUT,
        chunk_seconds=0.25,
        context_seconds=0.05,
        crossfade_seconds=0.05,
        ema_decay=None,
    )
    nn.init.normal_(model.generator.head.weight, std=0.05)
    return model.eval()


def mp3_like(seconds=0.5, seed=0) -> torch.Tensor:
    """(1, 2, T) at 88.2 kHz with nothing above 22.05 kHz, like the MP3 resampled to the target rate."""
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.randn(1, 2, int(seconds * TARGET), generator=g)
    keep = torch.fft.rfftfreq(x.shape[-1], 1 / TARGET) < 16000
    return torch.fft.irfft(torch.fft.rfft(x) * keep, x.shape[-1])


def high_band(x: torch.Tensor, hz: float = 22050.0) -> torch.Tensor:
    spec = torch.fft.rfft(x, dim=-1)
    freqs = torch.fft.rfftfreq(x.shape[-1], 1 / TARGET)
    return spec[..., freqs > hz + 500]


def test_band_bins():
    assert band_bins(1024, 88200, 22050) == 257  # exactly the bins of a 512-point STFT at 44.1 kHz
    assert band_bins(4096, 96000, 22050) == 941
    assert band_bins(1024, 44100, None) == band_bins(1024, 44100, 22050) == 513
    assert input_band_bins(1024, 88200, None) == input_band_bins(1024, 88200, 88200) == 513
    with pytest.raises(ValueError, match="input_rate=96000 Hz must not exceed"):
        input_band_bins(1024, 88200, 96000)


def test_blstm_head_maps_the_input_bins_to_every_target_bin():
    model = blstm_restorer()
    assert (model.net.num_bins, model.net.output_bins) == (band_bins(512, TARGET, INPUT / 2), 257)
    x = mp3_like()
    y = model(x)
    assert y.shape == x.shape
    # The head writes above 22.05 kHz, where the input had nothing ...
    assert high_band(y).abs().pow(2).mean() > 1e3 * high_band(x).abs().pow(2).mean()
    # ... from the input's band only: what lies well above 22.05 kHz in the input (beyond the STFT
    # window's leakage into the bins below) does not reach the network.
    noise = 1e-3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    above = torch.fft.irfft(
        torch.fft.rfft(noise) * (torch.fft.rfftfreq(x.shape[-1], 1 / TARGET) > 33000), x.shape[-1]
    )
    y2 = model(x + above)
    # y2 differs from y only by the added content itself (kept through the degraded phase/magnitude
    # path of the residual), not through the network: the change below 22.05 kHz is nil.
    low = lambda s: torch.fft.rfft(s)[..., torch.fft.rfftfreq(x.shape[-1], 1 / TARGET) < 20000]  # noqa: E731
    torch.testing.assert_close(low(y2), low(y), atol=1e-3, rtol=0)


def test_gan_sees_only_the_input_band_and_writes_above_it():
    model = gan_restorer()
    assert model.input_bins == 129
    x = mp3_like()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    y = model.restore(x, generator=g())
    assert high_band(y).abs().pow(2).mean() > 1e3 * high_band(x).abs().pow(2).mean()
    cond, _ = model._condition(x + 1e-2 * torch.randn(x.shape))
    assert cond[..., 129:, :].abs().max() == 0  # the resampler's residue above 22.05 kHz is not seen


def test_chunk_seams_at_the_target_rate_have_no_clicks():
    """Full-track inference in chunks (context + cross-fades at 88.2 kHz) matches one pass over the track;
    without context and cross-fades the same check fails at the seams."""
    model = blstm_restorer()
    x = mp3_like(seconds=1.0)
    whole = model(x)
    chunked = model.separate(x)[:, 0]
    err = (chunked - whole).pow(2).mean() / whole.pow(2).mean()
    assert 10 * torch.log10(err) < -30
    # The sample-to-sample step at each seam is no larger than the track's typical largest steps.
    step = (chunked[..., 1:] - chunked[..., :-1]).abs()
    seams = [int(s * TARGET) for s in (0.2, 0.4, 0.6, 0.8)]
    near = torch.stack([step[..., s - 64 : s + 64].max() for s in seams])
    assert near.max() <= 1.5 * torch.quantile(step.flatten(), 0.999)
    hard = blstm_restorer(context_seconds=0.0, crossfade_seconds=0.0)
    hard_err = (hard.separate(x)[:, 0] - whole).pow(2).mean() / whole.pow(2).mean()
    assert hard_err > 10 * err
