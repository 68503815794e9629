"""LightningModules for regression restorers (e.g. MP3 restoration): degraded audio in, clean audio out.

Batches are ``(degraded (B, C, T), clean (B, 1, C, T))``: restoration is treated as a separation with one
source (``"clean"``), so the datamodules, the evaluation runner and ``mb-eval`` are shared with separation.
:meth:`RestorationModule.separate` is that interface: full tracks in, ``(B, 1, C, T)`` out.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn

from musicbench.audio.chunking import chunked_apply
from musicbench.audio.stft import Stft
from musicbench.metrics.restoration import log_spectral_distance
from musicbench.metrics.sdr import global_sdr


class RestorationModule(pl.LightningModule):
    """Training, validation and full-track inference shared by restorers; subclasses define :meth:`restore`.

    Args:
        loss: ``loss(estimate, reference)`` on waveforms ``(B, C, T)`` -> scalar (e.g. ``torch.nn.L1Loss``,
            :class:`~musicbench.models.losses.MultiResolutionStftLoss`).
        optimizer: partial optimizer, called with the parameters (``None`` for parameter-free restorers).
        scheduler: optional partial LR scheduler, called with the optimizer.
        sample_rate: Hz (inference settings are in seconds; validation LSD needs it).
        chunk_seconds, context_seconds, crossfade_seconds: full-track inference by overlap-add (seconds).

    Logs ``train/loss``, ``val/loss``, ``val/sdr`` (global SDR of the restored audio, the checkpoint metric)
    and ``val/lsd`` (log-spectral distance, dB).
    """

    def __init__(
        self,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., object] | None = None,
        sample_rate: int = 44100,
        chunk_seconds: float = 30.0,
        context_seconds: float = 3.0,
        crossfade_seconds: float = 1.0,
    ) -> None:
        super().__init__()
        self.loss = loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.sample_rate = int(sample_rate)
        self.chunk_seconds, self.context_seconds, self.crossfade_seconds = (
            chunk_seconds,
            context_seconds,
            crossfade_seconds,
        )

    # --- model -------------------------------------------------------------------------------------
    def restore(self, degraded: torch.Tensor) -> torch.Tensor:
        """Degraded ``(B, C, T)`` -> restored ``(B, C, T)`` in one pass."""
        raise NotImplementedError

    @property
    def align(self) -> int:
        """Chunk starts of full-track inference are multiples of this many samples (e.g. the STFT hop)."""
        return 1

    def forward(self, degraded: torch.Tensor) -> torch.Tensor:
        return self.restore(degraded)

    @torch.no_grad()
    def separate(self, degraded: torch.Tensor) -> torch.Tensor:
        """Restore full tracks ``(B, C, T)`` -> ``(B, 1, C, T)`` (one source, ``"clean"``) by overlap-add of
        chunks with cross-fades; the interface the evaluation runner calls.
        """
        sr = self.sample_rate
        return chunked_apply(
            lambda x: self.restore(x).unsqueeze(1),
            degraded,
            chunk=int(self.chunk_seconds * sr),
            context=int(self.context_seconds * sr),
            crossfade=int(self.crossfade_seconds * sr),
            align=self.align,
        )

    # --- training ------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor | None:
        degraded, clean = batch
        loss = self.loss(self(degraded), clean[:, 0])
        self.log("train/loss", loss, prog_bar=True, batch_size=degraded.shape[0])
        # A parameter-free restorer (the identity baseline) has nothing to optimise: returning None skips
        # the backward pass, which would fail on a loss without a graph.
        return loss if loss.requires_grad else None

    def validation_step(self, batch, batch_idx: int) -> None:
        degraded, clean = batch
        clean, bs = clean[:, 0], degraded.shape[0]
        est = self(degraded)
        self.log("val/loss", self.loss(est, clean), batch_size=bs)
        self.log("val/sdr", global_sdr(clean, est).float().mean(), prog_bar=True, batch_size=bs)
        self.log("val/lsd", log_spectral_distance(clean, est, self.sample_rate).float().mean(), batch_size=bs)

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        if self.optimizer_factory is None or not params:
            return None  # Lightning then runs the loop without optimisation (identity baseline)
        optimizer = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer)},
        }


class IdentityRestorer(RestorationModule):
    """Returns the degraded input: the do-nothing baseline (the MP3 row of every results table)."""

    def __init__(
        self, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None, **kwargs
    ) -> None:
        super().__init__(loss if loss is not None else nn.L1Loss(), **kwargs)

    def restore(self, degraded: torch.Tensor) -> torch.Tensor:
        return degraded


class SpectralRestorer(RestorationModule):
    """STFT -> network -> iSTFT restorer.

    With ``complex_output=False`` the network predicts a residual on the degraded log-magnitude,
    ``log|S| = log(|X| + eps) + net(...)``, and the phase of ``X`` is kept: a residual (unlike a mask) can
    re-create bins the codec removed. With ``complex_output=True`` it predicts a complex residual added to
    ``X``, which can also correct the phase.

    Args:
        net: factory (``_partial_: true``) called as ``net(num_bins=n_fft // 2 + 1, audio_channels=C,
            outputs_per_bin=1 or 2)``, mapping ``(B, C, F, N)`` to ``(B, C, outputs_per_bin, F, N)``.
        audio_channels: channels of the audio.
        n_fft, hop_length: STFT size and hop in samples.
        complex_output: predict a complex residual instead of a log-magnitude residual.
        eps: magnitude floor of the log.
        **kwargs: :class:`RestorationModule` arguments (loss, optimizer, scheduler, sample_rate, inference).
    """

    def __init__(
        self,
        net: Callable[..., nn.Module],
        audio_channels: int = 2,
        n_fft: int = 1024,
        hop_length: int = 256,
        complex_output: bool = False,
        eps: float = 1e-5,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.stft = Stft(n_fft, hop_length)
        self.complex_output, self.eps = bool(complex_output), float(eps)
        self.audio_channels = int(audio_channels)
        self.net = net(
            num_bins=n_fft // 2 + 1,
            audio_channels=self.audio_channels,
            outputs_per_bin=2 if complex_output else 1,
        )

    @property
    def align(self) -> int:
        return self.stft.hop_length

    def restore(self, degraded: torch.Tensor) -> torch.Tensor:
        spec = self.stft(degraded)  # (B, C, F, N) complex
        log_mag = torch.log(spec.abs() + self.eps)
        out = self.net(log_mag)  # (B, C, K, F, N)
        if self.complex_output:
            est = spec + torch.complex(out[:, :, 0], out[:, :, 1])
        else:
            est = torch.polar(torch.exp(log_mag + out[:, :, 0]), spec.angle())
        return self.stft.inverse(est, degraded.shape[-1])
