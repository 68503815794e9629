"""The models on CUDA: full-track inference and two training steps agree with the CPU.

In float64 (``precision="64-true"``) and with SGD, so neither TF32 convolutions, bf16 nor Adam's division
by tiny second moments blur the comparison; no draws on the device (no noise z, no gradient-penalty
interpolation), since a device's generator draws other numbers than the CPU's.
"""

from __future__ import annotations

import functools

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from musicbench.audio.representations import CompressedComplex
from musicbench.models.adversarial import AdversarialRestorer
from musicbench.models.losses import SpectralL1
from musicbench.models.restoration import SpectralRestorer
from musicbench.models.separation import MaskSeparator
from musicbench.nets.blstm import BLSTM
from musicbench.nets.gan import SpectralCritic, SpectralGenerator
from musicbench.nets.umx import OpenUnmix
from musicbench.nets.unet import UNet

pytestmark = pytest.mark.gpu

SR = 8000
INFERENCE = dict(sample_rate=SR, chunk_seconds=0.5, context_seconds=0.1, crossfade_seconds=0.05)
SGD = functools.partial(torch.optim.SGD, lr=0.1)


def separator() -> MaskSeparator:
    torch.manual_seed(0)
    net = functools.partial(UNet, depth=3, base_channels=4, dropout=0.0)
    return MaskSeparator(net, ["a", "b"], optimizer=SGD, n_fft=256, hop_length=64, **INFERENCE)


def umx_separator() -> MaskSeparator:
    torch.manual_seed(0)
    net = functools.partial(OpenUnmix, hidden_size=16, dropout=0.0)  # no dropout draws on the device
    return MaskSeparator(net, ["a", "b"], optimizer=SGD, n_fft=256, hop_length=64, max_bin=64, **INFERENCE)


def lstm_restorer() -> SpectralRestorer:
    torch.manual_seed(0)
    model = SpectralRestorer(
        net=functools.partial(BLSTM, hidden_size=16, num_layers=1),
        n_fft=256,
        hop_length=64,
        loss=SpectralL1(256, 64),
        optimizer=SGD,
        **INFERENCE,
    )
    nn.init.normal_(model.net.out.weight, std=0.01)  # the output layer starts at zero
    return model


def gan_restorer() -> AdversarialRestorer:
    torch.manual_seed(0)
    model = AdversarialRestorer(
        generator=functools.partial(SpectralGenerator, z_dim=0, depth=2, base_channels=8),
        critic=functools.partial(SpectralCritic, depth=2, base_channels=8),
        representation=CompressedComplex(0.5),
        gradient_penalty_weight=0.0,
        reconstruction=nn.L1Loss(),
        feature_matching_weight=1.0,
        optimizer=SGD,
        critic_optimizer=SGD,
        ema_decay=0.9,
        num_samples=1,
        n_fft=256,
        hop_length=64,
        **INFERENCE,
    )
    nn.init.normal_(model.generator.head.weight, std=0.05)  # the output layer starts at zero
    model.ema.module.load_state_dict(model.generator.state_dict())
    return model


MODELS = [separator, umx_separator, lstm_restorer, gan_restorer]
IDS = ["unet_separator", "umx_separator", "lstm_restorer", "gan_restorer"]


def _batch(model: pl.LightningModule) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    clean = 0.1 * torch.randn(2, 2, 2, 2048, generator=g)
    if isinstance(model, MaskSeparator):
        return clean.sum(1), clean  # (mixture, sources)
    return clean[:, 0] + 0.01 * torch.randn(2, 2, 2048, generator=g), clean[:, :1]  # (degraded, clean[None])


def _fit(model: pl.LightningModule, accelerator: str, root) -> dict[str, torch.Tensor]:
    data = _batch(model)
    loader = torch.utils.data.DataLoader([tuple(t[i] for t in data) for i in range(2)] * 2, batch_size=2)
    trainer = pl.Trainer(
        accelerator=accelerator, devices=1, precision="64-true", max_epochs=1, limit_val_batches=0,
        num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=root,
    )  # fmt: skip
    trainer.fit(model, loader)
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _needs_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")


@pytest.mark.parametrize("build", MODELS, ids=IDS)
def test_full_track_inference_on_cuda_matches_cpu(build):
    _needs_cuda()
    model = build().double().eval()
    audio = 0.1 * torch.randn(
        1, 2, int(1.3 * SR), generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    cpu = model.separate(audio)  # several chunks: the overlap-add runs on the device too
    gpu = model.cuda().separate(audio.cuda())
    assert gpu.is_cuda and gpu.shape == cpu.shape
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("build", MODELS, ids=IDS)
def test_training_steps_on_cuda_match_cpu(build, tmp_path):
    _needs_cuda()
    start = {k: v.detach().clone() for k, v in build().state_dict().items()}
    cpu = _fit(build(), "cpu", tmp_path / "cpu")
    gpu = _fit(build(), "gpu", tmp_path / "gpu")
    assert any(v.is_floating_point() and not torch.equal(v.double(), cpu[k]) for k, v in start.items())
    for key, expected in cpu.items():
        torch.testing.assert_close(gpu[key], expected, rtol=1e-7, atol=1e-10, msg=key)
