"""LightningModule for mask-based source separators (the Spleeter-style U-Net, Open-Unmix)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from musicbench.audio.stft import Stft
from musicbench.metrics.sdr import global_sdr
from musicbench.models.base import OptimizerFactory, SchedulerFactory, System, per_item


class MaskSeparator(System):
    """Spectrogram-mask separator: STFT -> one mask per source -> masked magnitude, mixture phase -> iSTFT.

    Args:
        net: a factory (``functools.partial`` / Hydra ``_partial_: true``) building the mask network as
            ``net(in_channels=audio_channels, out_channels=num_sources * audio_channels, num_bins=max_bin)``;
            the network maps ``(batch, channels, max_bin, frames)`` magnitudes to non-negative masks of shape
            ``(batch, sources*channels, max_bin, frames)`` (the U-Net's in [0, 1], Open-Unmix's unbounded).
        sources: source names, in the order of the datamodule's targets.
        audio_channels: channels of the audio (2 for stereo).
        sample_rate: Hz, used to convert the inference settings from seconds to samples.
        n_fft, hop_length: STFT size and hop in samples (default 4096/1024 at 44.1 kHz).
        max_bin: the network sees only bins ``[0, max_bin)`` (Spleeter uses 1024 of 2049: up to ~11 kHz);
            ``None`` uses all bins.
        mask_extension: mask above ``max_bin``: ``"zeros"`` or ``"average"`` (mean mask of each frame).
        optimizer, scheduler, chunk_seconds, context_seconds, crossfade_seconds: as :class:`System`.
    """

    def __init__(
        self,
        net: Callable[..., nn.Module],
        sources: Sequence[str],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        audio_channels: int = 2,
        sample_rate: int = 44100,
        n_fft: int = 4096,
        hop_length: int = 1024,
        max_bin: int | None = None,
        mask_extension: str = "zeros",
        chunk_seconds: float = 30.0,
        context_seconds: float = 3.0,
        crossfade_seconds: float = 1.0,
    ) -> None:
        super().__init__(optimizer, scheduler, sample_rate, chunk_seconds, context_seconds, crossfade_seconds)
        if mask_extension not in ("zeros", "average"):
            raise ValueError(f"mask_extension must be 'zeros' or 'average', got {mask_extension!r}")
        num_bins = n_fft // 2 + 1
        if max_bin is not None and not 0 < max_bin <= num_bins:
            raise ValueError(f"max_bin must be in (0, {num_bins}] for n_fft={n_fft}, got {max_bin}")
        self.sources = list(sources)
        self.audio_channels = audio_channels
        self.max_bin = max_bin or num_bins
        self.mask_extension = mask_extension
        self.stft = Stft(n_fft, hop_length)
        self.net = net(
            in_channels=audio_channels, out_channels=len(self.sources) * audio_channels, num_bins=self.max_bin
        )

    # --- model -------------------------------------------------------------------------------------
    def masks(self, mag: torch.Tensor) -> torch.Tensor:
        """Mixture magnitude ``(B, C, F, N)`` -> masks ``(B, S, C, F, N)`` over all ``F`` bins."""
        b, c, f, n = mag.shape
        m = self.net(mag[:, :, : self.max_bin]).reshape(b, len(self.sources), c, -1, n)
        if self.max_bin < f:
            if self.mask_extension == "zeros":
                ext = m.new_zeros(b, len(self.sources), c, f - self.max_bin, n)
            else:
                ext = m.mean(dim=-2, keepdim=True).expand(-1, -1, -1, f - self.max_bin, -1)
            m = torch.cat([m, ext], dim=-2)
        return m

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """Separate a mixture ``(B, C, T)`` into sources ``(B, S, C, T)`` (one pass, no chunking)."""
        spec = self.stft(mixture)
        est = self.masks(spec.abs()) * spec.unsqueeze(1)  # masked magnitude with the mixture phase
        return self.stft.inverse(est, mixture.shape[-1])

    def estimate(self, mixture: torch.Tensor) -> torch.Tensor:
        return self(mixture)

    @property
    def align(self) -> int:
        # The U-Net halves the frames at every level: chunks start on its grid of hops.
        return self.stft.hop_length * getattr(self.net, "frame_multiple", 1)

    # --- training ------------------------------------------------------------------------------------
    def _loss(self, mixture: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        spec = self.stft(mixture)
        est_mag = self.masks(spec.abs()) * spec.abs().unsqueeze(1)
        return F.l1_loss(est_mag, self.stft(targets).abs())

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        mixture, targets = batch
        loss = self._loss(mixture, targets)
        self.log("train/loss", loss, prog_bar=True, batch_size=mixture.shape[0])
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        mixture, targets = batch
        sdr = global_sdr(targets, self(mixture))  # (B, S)
        # Per item, averaged over the epoch's items of every process (System.log_items).
        values = {"val/loss": per_item(self._loss, mixture, targets), "val/sdr": sdr.mean(1)}
        values.update({f"val/sdr/{name}": sdr[:, i] for i, name in enumerate(self.sources)})
        self.log_items(values, prog_bar=["val/sdr"])
