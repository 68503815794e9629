"""Restoration LightningModules: shapes, full-track inference, a short training run, the identity."""

from __future__ import annotations

import functools

import pytest
import pytorch_lightning as pl
import torch
import torchaudio

from musicbench.models.losses import SpectralL1
from musicbench.models.restoration import IdentityRestorer, SpectralRestorer
from musicbench.nets.blstm import BLSTM

SR = 8000


def restorer(complex_output=False, **kwargs) -> SpectralRestorer:
    return SpectralRestorer(
        net=functools.partial(BLSTM, hidden_size=32, num_layers=1),
        audio_channels=2,
        n_fft=256,
        hop_length=64,
        complex_output=complex_output,
        loss=SpectralL1(256, 64),
        optimizer=functools.partial(torch.optim.Adam, lr=3e-3),
        sample_rate=SR,
        **kwargs,
    )


def lowpass_pair(batch=4, seconds=0.5, seed=0):
    """(degraded, clean[None]): clean broadband noise; degraded = clean low-passed at 1.5 kHz (a codec's cut)."""
    g = torch.Generator().manual_seed(seed)
    clean = 0.1 * torch.randn(batch, 2, int(seconds * SR), generator=g)
    degraded = torchaudio.functional.lowpass_biquad(clean, SR, 1500.0)
    return degraded, clean[:, None]


@pytest.mark.parametrize("complex_output", [False, True])
def test_untrained_restorer_is_the_identity_and_shapes_hold(complex_output):
    model = restorer(complex_output).eval()
    degraded, _ = lowpass_pair()
    out = model(degraded)
    assert out.shape == degraded.shape
    # The zero-initialised output layer makes the untrained residual model (almost) return its input.
    assert torch.allclose(out, degraded, atol=1e-4)
    full = model.separate(degraded[:1])
    assert full.shape == (1, 1, *degraded.shape[1:])


def test_full_track_inference_matches_one_pass_on_long_chunks():
    torch.manual_seed(0)
    model = restorer(chunk_seconds=0.5, context_seconds=0.25, crossfade_seconds=0.1).eval()
    torch.nn.init.normal_(model.net.out.weight, std=0.01)
    degraded, _ = lowpass_pair(batch=1, seconds=2.0)
    chunked = model.separate(degraded)[:, 0]
    whole = model(degraded)
    # Chunks see 0.25 s of context on each side; a BLSTM's memory fades, so the seams barely differ.
    err = (chunked - whole).abs().max() / whole.abs().max()
    assert err < 0.05


@pytest.mark.parametrize("complex_output", [False, True])
def test_short_training_lowers_the_loss(complex_output):
    pl.seed_everything(0)
    model = restorer(complex_output)
    degraded, clean = lowpass_pair(batch=8)
    opt = model.configure_optimizers()
    losses = []
    for _ in range(60):
        loss = model.loss(model(degraded), clean[:, 0])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) / 5 < 0.7 * losses[0]


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_identity_returns_the_input_and_trains_nothing():
    model = IdentityRestorer(sample_rate=SR)
    degraded, clean = lowpass_pair(batch=2)
    assert torch.equal(model.separate(degraded), degraded[:, None])
    assert model.configure_optimizers() is None
    assert model.training_step((degraded, clean), 0) is None


def test_validation_metrics_are_means_over_items_whatever_the_batching():
    """val/sdr, val/lsd and val/loss are means over the items (System.log_items), so batches of 2 and of 1
    over 3 items (an uneven last batch) log the same values."""
    from musicbench.metrics.restoration import log_spectral_distance
    from musicbench.metrics.sdr import global_sdr

    degraded, clean = lowpass_pair(batch=3)
    model = IdentityRestorer(sample_rate=SR)
    data = torch.utils.data.TensorDataset(degraded, clean)
    logged = []
    for batch_size in (2, 1):
        trainer = pl.Trainer(
            accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
        )
        (metrics,) = trainer.validate(model, torch.utils.data.DataLoader(data, batch_size=batch_size))
        logged.append(metrics)
    assert logged[0] == pytest.approx(logged[1], rel=1e-6)
    expected_loss = torch.stack([(degraded[i] - clean[i, 0]).abs().mean() for i in range(3)]).mean()
    assert logged[0]["val/loss"] == pytest.approx(float(expected_loss), rel=1e-6)
    assert logged[0]["val/sdr"] == pytest.approx(float(global_sdr(clean[:, 0], degraded).mean()), rel=1e-6)
    lsd = log_spectral_distance(clean[:, 0], degraded, SR).mean()
    assert logged[0]["val/lsd"] == pytest.approx(float(lsd), rel=1e-6)
