"""What mb-train sends to the trackers: parameters, the examples a model gives, spectrogram images."""

import functools
import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from musicbench.audio.representations import CompressedComplex
from musicbench.models.adversarial import AdversarialRestorer
from musicbench.models.restoration import IdentityRestorer
from musicbench.models.separation import MaskSeparator
from musicbench.nets.gan import SpectralCritic, SpectralGenerator
from musicbench.nets.unet import UNet
from musicbench.utils.config import register_resolvers
from musicbench.utils.tracking import (
    ValidationExamples,
    flatten,
    run_params,
    spectrogram_db,
    spectrogram_figure,
)

SR = 8000


def test_flatten_gives_command_line_keys_and_scalars():
    flat = flatten({"model": {"net": {"depth": 3}, "sources": ["a", "b"], "max_bin": None}, "seed": 1})
    assert flat == {"model.net.depth": 3, "model.sources": "['a', 'b']", "model.max_bin": "None", "seed": 1}


def test_run_params_record_the_run_folder_code_and_data(tmp_path):
    params = run_params({"seed": 1, "hydra": {"x": 1}}, tmp_path / "abc123", "d1g3st")
    assert params["run.signature"] == "abc123" and params["run.dir"] == str(tmp_path / "abc123")
    assert params["run.data_digest"] == "d1g3st" and params["run.code_version"]
    assert params["seed"] == 1 and not any(k.startswith("hydra") for k in params)


def test_spectrogram_db_of_a_full_scale_sine_peaks_near_0_db():
    t = torch.arange(SR) / SR
    sine = torch.sin(2 * math.pi * 1000 * t).expand(2, -1)  # both channels: the channel mean is the sine
    spec = spectrogram_db(sine, n_fft=512, hop_length=128)
    assert spec.shape == (257, SR // 128 + 1)
    assert abs(float(spec[:, 10:-10].max())) < 0.5
    assert int(spec[:, 30].argmax()) == 1000 * 512 // SR  # the 1 kHz bin


def test_spectrogram_figure_is_an_rgb_image():
    g = torch.Generator().manual_seed(0)
    panels = {
        "mixture": torch.randn(2, SR, generator=g),
        "clean/reference": 0.01 * torch.randn(2, SR, generator=g),
    }
    image = spectrogram_figure(panels, SR, n_fft=256, hop_length=64)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.std() > 0  # something is drawn


def _separator():
    torch.manual_seed(0)
    return MaskSeparator(
        net=functools.partial(UNet, depth=2, base_channels=4),
        sources=["soprano", "bass"],
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        n_fft=256,
        hop_length=64,
        sample_rate=SR,
        chunk_seconds=0.5,
        context_seconds=0.1,
        crossfade_seconds=0.05,
    )


def test_separator_examples_are_the_mixture_estimates_and_references():
    model = _separator().eval()
    mixture, targets = torch.randn(2, 4096), torch.randn(2, 2, 4096)
    ex = model.examples(mixture, targets, "item")
    assert list(ex) == [
        "mixture",
        "soprano/model",
        "soprano/reference",
        "bass/model",
        "bass/reference",
    ]
    assert torch.equal(ex["mixture"], mixture) and torch.equal(ex["bass/reference"], targets[1])
    assert torch.allclose(ex["soprano/model"], model.separate(mixture[None])[0, 0])


def test_restorer_examples_are_degraded_restored_and_clean():
    model = IdentityRestorer(sample_rate=SR).eval()
    degraded, clean = torch.randn(2, 2048), torch.randn(1, 2, 2048)
    ex = model.examples(degraded, clean, "item")
    assert list(ex) == ["degraded", "clean/model", "clean/reference"]
    assert torch.allclose(ex["clean/model"], degraded)


def test_stochastic_restorer_examples_are_its_k_samples_and_their_mean():
    torch.manual_seed(0)
    model = AdversarialRestorer(
        generator=functools.partial(SpectralGenerator, z_dim=4, depth=2, base_channels=8),
        critic=functools.partial(SpectralCritic, depth=2, base_channels=8),
        representation=CompressedComplex(0.5),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        critic_optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        n_fft=256,
        hop_length=64,
        sample_rate=SR,
        chunk_seconds=0.5,
        context_seconds=0.1,
        crossfade_seconds=0.05,
        num_samples=3,
    ).eval()
    ex = model.examples(torch.randn(2, 4096), torch.randn(1, 2, 4096), "item")
    samples = [f"clean/sample_{k}" for k in range(3)]
    assert set(ex) == {"degraded", *samples, "clean/mean", "clean/reference"}
    assert torch.allclose(ex["clean/mean"], torch.stack([ex[s] for s in samples]).mean(0), atol=1e-6)


def test_validation_examples_refuse_meaningless_settings():
    with pytest.raises(ValueError, match="every_n_epochs"):
        ValidationExamples(every_n_epochs=0)


def test_sweep_name_is_null_outside_a_multirun():
    register_resolvers()
    assert OmegaConf.create({"group": "${mb_sweep_name:}"}).group is None


def test_a_multirun_job_groups_its_wandb_run_by_the_sweep_folder(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from musicbench.utils.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "logger=wandb",
                "name=lr_grid",
                f"paths.output_root={tmp_path}",
                "hydra.mode=MULTIRUN",
            ],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    try:
        assert cfg.logger.wandb.group == "lr_grid"  # outputs/train/lr_grid: the sweep folder
    finally:
        HydraConfig.instance().cfg = None


def test_params_go_to_the_trackers_not_to_the_csv_logger(tmp_path):
    from pytorch_lightning.loggers import TensorBoardLogger

    from musicbench.utils.loggers import CSVLogger
    from musicbench.utils.tracking import log_params

    csv = CSVLogger(tmp_path, name="csv", version="")
    tensorboard = TensorBoardLogger(tmp_path, name="tb", version="", default_hp_metric=False)
    log_params([csv, tensorboard], {"seed": 1, "run.signature": "abc"})
    csv.finalize("success")
    tensorboard.finalize("success")
    assert not (tmp_path / "csv" / "hparams.yaml").exists()
    assert "run.signature: abc" in (tmp_path / "tb" / "hparams.yaml").read_text()
