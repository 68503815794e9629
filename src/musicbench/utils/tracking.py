"""What mb-train sends to experiment trackers besides the scalars: the run's parameters, audio examples
and spectrograms at validation, and the evaluation files at test.

Each tracker gets them in its own way: TensorBoard (``add_audio``, ``add_image``, ``add_text``),
Weights & Biases (``wandb.Audio``, ``wandb.Image``, an artifact), MLflow (parameters, ``log_artifact`` of
WAV/PNG/JSON/CSV files). The CSV logger keeps scalars only. See docs/tracking.md.
"""

from __future__ import annotations

import io
import logging
import math
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import soundfile as sf
import torch
from pytorch_lightning import loggers as pl_loggers

from musicbench.utils.provenance import code_version

log = logging.getLogger(__name__)

# The evaluation's files in a run folder that go to the trackers at test (evaluation/model.py writes them).
TEST_FILES = ("summary.json", "scores.csv")
TEST_FOLDERS = ("results",)


def _is(logger: Any, name: str) -> bool:
    """Whether ``logger`` is an instance of Lightning's logger class ``name`` (importing that class does
    not import its tracker library)."""
    return isinstance(logger, getattr(pl_loggers, name))


# --- parameters --------------------------------------------------------------------------------------
def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"model.net.depth": 3, ...}`` (the command-line key of every value); lists and
    ``None`` become strings, as trackers take scalars only."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def run_params(config: Mapping[str, Any], run_dir: str | Path, data_digest: str | None) -> dict[str, Any]:
    """The parameters every tracker records for a run: the resolved config flattened (less Hydra's own
    keys), and under ``run.``: the run folder, its signature (the folder name: a hash of the command-line
    overrides), the code version and the digest of the data (``data.json``)."""
    params = flatten({k: v for k, v in config.items() if k != "hydra"})
    run_dir = Path(run_dir)
    params.update(
        {
            "run.dir": str(run_dir),
            "run.signature": run_dir.name,
            "run.code_version": code_version(),
            "run.data_digest": str(data_digest),
        }
    )
    return params


def log_params(loggers: Iterable[pl_loggers.Logger], params: Mapping[str, Any]) -> None:
    """Record ``params`` (see :func:`run_params`) with every tracker. Not with the CSV logger: its run
    folder has the config already (``config.yaml``)."""
    for logger in loggers:
        if not isinstance(logger, pl_loggers.CSVLogger):
            logger.log_hyperparams(dict(params))


# --- evaluation files --------------------------------------------------------------------------------
def log_test_files(loggers: Iterable[pl_loggers.Logger], run_dir: str | Path) -> None:
    """Send the test stage's files (``summary.json``, ``scores.csv``, ``results/``) to the trackers:
    MLflow artifacts under ``test/``, a W&B artifact of type ``evaluation``, the summary as TensorBoard
    text. Files the evaluation did not write are left out."""
    run_dir = Path(run_dir)
    files = [run_dir / f for f in TEST_FILES if (run_dir / f).is_file()]
    folders = [run_dir / f for f in TEST_FOLDERS if (run_dir / f).is_dir()]
    for logger in loggers:
        if _is(logger, "MLFlowLogger"):
            for f in files:
                logger.experiment.log_artifact(logger.run_id, str(f), "test")
            for d in folders:
                logger.experiment.log_artifacts(logger.run_id, str(d), f"test/{d.name}")
        elif _is(logger, "WandbLogger"):
            import wandb

            run = logger.experiment
            artifact = wandb.Artifact(f"test-{run.id}", type="evaluation")
            for f in files:
                artifact.add_file(str(f))
            for d in folders:
                artifact.add_dir(str(d), name=d.name)
            run.log_artifact(artifact)
        elif _is(logger, "TensorBoardLogger") and (run_dir / "summary.json").is_file():
            text = (run_dir / "summary.json").read_text(encoding="utf-8")
            # Markdown: indented by four spaces, the JSON shows as a code block.
            logger.experiment.add_text("test/summary", "    " + text.replace("\n", "\n    "))
            logger.experiment.flush()


# --- validation examples -----------------------------------------------------------------------------
def spectrogram_db(audio: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """Magnitude spectrogram in dB (re full scale 1.0) of the channel mean of ``audio`` ``(C, T)``:
    ``(freq, frames)`` with ``n_fft // 2 + 1`` bins, hop ``hop_length`` samples (Hann window)."""
    mono = audio.detach().float().cpu().mean(0)
    window = torch.hann_window(n_fft)
    spec = torch.stft(mono, n_fft, hop_length, window=window, return_complex=True, center=True)
    # Scaled so that a full-scale sine peaks near 0 dB.
    return 20 * torch.log10(spec.abs() / window.sum() * 2 + 1e-10)


def spectrogram_figure(
    panels: Mapping[str, torch.Tensor],
    sample_rate: int,
    n_fft: int = 1024,
    hop_length: int = 256,
    dynamic_range_db: float = 80.0,
) -> np.ndarray:
    """One image of the spectrograms of ``panels`` (``{label: (C, T)}``), all on one colour scale: from the
    loudest bin of any panel down ``dynamic_range_db`` dB, so panels compare by colour. Returns RGB
    ``(height, width, 3)`` uint8."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render to memory
    import matplotlib.pyplot as plt

    specs = {label: spectrogram_db(a, n_fft, hop_length) for label, a in panels.items()}
    vmax = math.ceil(max(float(s.max()) for s in specs.values()))
    vmin = vmax - dynamic_range_db
    ncols = min(3, len(specs))
    nrows = math.ceil(len(specs) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4 * ncols, 2.6 * nrows), squeeze=False, dpi=72, layout="constrained"
    )
    image = None
    for ax, (label, spec) in zip(axes.flat, specs.items(), strict=False):
        seconds = spec.shape[-1] * hop_length / sample_rate
        khz = sample_rate / 2000
        image = ax.imshow(
            spec.numpy(), origin="lower", aspect="auto", vmin=vmin, vmax=vmax, extent=(0, seconds, 0, khz)
        )
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("s", fontsize=8)
        ax.set_ylabel("kHz", fontsize=8)
    for ax in list(axes.flat)[len(specs) :]:
        ax.axis("off")
    fig.colorbar(image, ax=axes.ravel().tolist(), label="dB")
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb


class ValidationExamples(pl.Callback):
    """Send a few fixed validation items to the trackers: their audio and one spectrogram image each.

    The items are the first ``num_examples`` of the first validation batch (the validation set is fixed,
    so they are the same every epoch), cut to their first ``seconds``. The model says what to listen to
    (:meth:`musicbench.models.base.System.examples`: input, estimates and references per source; every
    sample of a stochastic model). Sent at the end of a validation whose epoch is a multiple of
    ``every_n_epochs`` (epoch 0 included), by global rank 0, not during the sanity check or
    ``fast_dev_run``. Loggers without media (CSV) are skipped; with none of the others this does nothing.

    Args:
        num_examples: items per validation (their names: ``val_examples/<i>``).
        seconds: length of each item in seconds (the start of the item).
        every_n_epochs: send at epochs ``0, n, 2n, ...``.
        n_fft, hop_length: STFT of the spectrograms, in samples.
        dynamic_range_db: the colour scale spans this many dB below the loudest bin of the item's panels.
    """

    def __init__(
        self,
        num_examples: int = 1,
        seconds: float = 4.0,
        every_n_epochs: int = 1,
        n_fft: int = 1024,
        hop_length: int = 256,
        dynamic_range_db: float = 80.0,
    ) -> None:
        if num_examples < 0 or seconds <= 0 or every_n_epochs < 1:
            raise ValueError(
                "ValidationExamples needs num_examples >= 0, seconds > 0 and every_n_epochs >= 1, got "
                f"{num_examples}, {seconds}, {every_n_epochs}"
            )
        self.num_examples, self.seconds, self.every_n_epochs = num_examples, seconds, every_n_epochs
        self.n_fft, self.hop_length, self.dynamic_range_db = n_fft, hop_length, dynamic_range_db
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def _media_loggers(self, trainer: pl.Trainer) -> list[Any]:
        names = ("TensorBoardLogger", "WandbLogger", "MLFlowLogger")
        return [lg for lg in trainer.loggers if any(_is(lg, n) for n in names)]

    def _due(self, trainer: pl.Trainer) -> bool:
        return (
            self.num_examples > 0
            and trainer.is_global_zero
            and not trainer.sanity_checking
            and not trainer.fast_dev_run
            and trainer.current_epoch % self.every_n_epochs == 0
            and bool(self._media_loggers(trainer))
        )

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._batch = None

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0 and dataloader_idx == 0 and self._due(trainer):
            inputs, targets = batch[0], batch[1]
            samples = int(self.seconds * pl_module.sample_rate)
            self._batch = (
                inputs[: self.num_examples, ..., :samples],
                targets[: self.num_examples, ..., :samples],
            )

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._batch is None:
            return
        inputs, targets = self._batch
        self._batch = None
        sr = int(pl_module.sample_rate)
        for i in range(inputs.shape[0]):
            audio = pl_module.examples(inputs[i], targets[i], f"val_examples_{i}")
            audio = {label: a.detach().float().cpu() for label, a in audio.items()}
            image = spectrogram_figure(audio, sr, self.n_fft, self.hop_length, self.dynamic_range_db)
            for logger in self._media_loggers(trainer):
                send_example(
                    logger, f"val_examples/{i}", audio, image, sr, trainer.global_step, trainer.current_epoch
                )


def send_example(
    logger: Any,
    tag: str,
    audio: Mapping[str, torch.Tensor],
    image: np.ndarray,
    sample_rate: int,
    step: int,
    epoch: int,
) -> None:
    """Send one example (``{label: (C, T)}`` audio and its RGB spectrogram image) to ``logger``, in that
    tracker's own way. Audio is not normalised (levels compare between labels and epochs)."""
    if _is(logger, "TensorBoardLogger"):
        writer = logger.experiment
        for label, a in audio.items():
            # TensorBoard plays one channel: the channel mean.
            writer.add_audio(f"{tag}/{label}", a.mean(0).clamp(-1, 1), step, sample_rate=sample_rate)
        writer.add_image(f"{tag}/spectrograms", image, step, dataformats="HWC")
        writer.flush()
    elif _is(logger, "WandbLogger"):
        import wandb

        media: dict[str, Any] = {
            f"{tag}/{label}": wandb.Audio(a.T.clamp(-1, 1).numpy(), sample_rate=sample_rate, caption=label)
            for label, a in audio.items()
        }
        media[f"{tag}/spectrograms"] = wandb.Image(image, caption=", ".join(audio))
        media["trainer/global_step"] = step  # the x axis Lightning's WandbLogger defines
        logger.experiment.log(media)
    elif _is(logger, "MLFlowLogger"):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for label, a in audio.items():
                path = folder / (label.replace("/", "_") + ".wav")
                sf.write(path, a.T.numpy(), sample_rate, subtype="FLOAT")
            _write_png(folder / "spectrograms.png", image)
            logger.experiment.log_artifacts(logger.run_id, tmp, f"validation/epoch{epoch:04d}/{tag}")


def _write_png(path: Path, image: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    plt.imsave(buf, image, format="png")
    path.write_bytes(buf.getvalue())
