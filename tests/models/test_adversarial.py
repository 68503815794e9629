import functools

import torch
from torch import nn

from musicbench.audio.representations import CompressedComplex
from musicbench.models.adversarial import AdversarialRestorer
from musicbench.models.base import track_seed
from musicbench.nets.gan import SpectralCritic, SpectralGenerator


def _model(z_dim=4, **kw):
    torch.manual_seed(0)
    model = AdversarialRestorer(
        generator=functools.partial(SpectralGenerator, z_dim=z_dim, depth=2, base_channels=8),
        critic=functools.partial(SpectralCritic, depth=2, base_channels=8),
        representation=CompressedComplex(0.5),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        critic_optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        n_fft=256,
        hop_length=64,
        sample_rate=8000,
        chunk_seconds=0.5,
        context_seconds=0.1,
        crossfade_seconds=0.05,
        num_samples=3,
        **kw,
    )
    # The generator's output layer starts at zero; give it weights so that z reaches the output.
    nn.init.normal_(model.generator.head.weight, std=0.05)
    if model.ema is not None:  # inference uses the EMA copy
        model.ema.module.load_state_dict(model.generator.state_dict())
    return model


def _batch():
    g = torch.Generator().manual_seed(1)
    clean = torch.randn(2, 2, 4096, generator=g)
    degraded = clean + 0.3 * torch.randn(2, 2, 4096, generator=g)
    return degraded, clean.unsqueeze(1)


def test_manual_optimization_steps_update_both_networks(tmp_path):
    import pytorch_lightning as pl

    model = _model(reconstruction=nn.L1Loss(), feature_matching_weight=1.0, critic_steps=2, gradient_clip=1.0)
    g0 = [p.detach().clone() for p in model.generator.parameters()]
    d0 = [p.detach().clone() for p in model.critic.parameters()]
    data = torch.utils.data.DataLoader([tuple(t[i] for t in _batch()) for i in range(2)] * 2, batch_size=2)
    trainer = pl.Trainer(
        max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, data)
    assert any(not torch.equal(a, b) for a, b in zip(g0, model.generator.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(d0, model.critic.parameters(), strict=True))
    logged = trainer.callback_metrics
    for key in ("train/g_loss", "train/d_loss", "train/gp", "train/critic_real", "train/critic_fake"):
        assert key in logged and torch.isfinite(logged[key])
    assert model.ema.n_averaged.item() == trainer.global_step // 2  # one EMA update per generator step


def test_samples_seeded_diverse_and_deterministic_variant():
    model = _model().eval()
    degraded = _batch()[0][:1]
    a, b = model.sample(degraded, seed=7), model.sample(degraded, seed=7)
    assert a.shape == (3, 1, 2, 4096)
    assert torch.equal(a, b)
    assert (a[0] - a[1]).abs().max() > 1e-5  # different z, different restorations
    det = _model(z_dim=0).eval().sample(degraded, seed=7)
    assert torch.equal(det[0], det[1])
    systems = model.estimate_systems(degraded[0], "track A")
    assert set(systems) == {"sample_0", "sample_1", "sample_2", "mean"}
    torch.testing.assert_close(
        systems["mean"][0], torch.stack([systems[f"sample_{k}"][0] for k in range(3)]).mean(0)
    )
    assert track_seed("track A") == track_seed("track A") != track_seed("track B")


def test_checkpoint_round_trip(tmp_path):
    model = _model().eval()
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    other = _model().eval()
    for p in other.parameters():
        nn.init.normal_(p)
    other.load_state_dict(torch.load(path))
    degraded = _batch()[0][:1]
    assert torch.equal(model.sample(degraded, seed=1), other.sample(degraded, seed=1))


def test_forward_restores_each_item_as_if_alone():
    """Validation's fixed-noise restoration of an item does not depend on the other items of its batch."""
    model = _model().eval()
    degraded, _ = _batch()
    together = model(degraded)
    alone = torch.cat([model(degraded[i : i + 1]) for i in range(len(degraded))])
    torch.testing.assert_close(together, alone)
    assert not torch.allclose(together[0], degraded[0])  # the noise reaches the output
