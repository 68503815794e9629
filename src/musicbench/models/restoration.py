"""LightningModules for regression restorers (e.g. MP3 restoration): degraded audio in, clean audio out.

Batches are ``(degraded (B, C, T), clean (B, 1, C, T))``: restoration is treated as a separation with one
source (``"clean"``), so the datamodules, the evaluation runner and ``mb-eval`` are shared with separation.
:meth:`RestorationModule.estimate` is that view of :meth:`RestorationModule.restore`: ``(B, 1, C, T)`` out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from musicbench.audio.stft import Stft, band_bins
from musicbench.metrics.restoration import log_spectral_distance
from musicbench.metrics.sdr import global_sdr
from musicbench.models.base import System, per_item


class RestorationModule(System):
    """Training and validation shared by restorers; subclasses define :meth:`restore`.

    Args:
        loss: ``loss(estimate, reference)`` on waveforms ``(B, C, T)`` -> scalar (e.g. ``torch.nn.L1Loss``,
            :class:`~musicbench.models.losses.MultiResolutionStftLoss`).
        **kwargs: :class:`~musicbench.models.base.System` arguments: ``optimizer`` (``None`` for
            parameter-free restorers), ``scheduler``, ``sample_rate`` (Hz; the validation LSD needs it too)
            and the inference settings in seconds.

    Logs ``train/loss``, ``val/loss``, ``val/sdr`` (global SDR of the restored audio, the checkpoint metric)
    and ``val/lsd`` (log-spectral distance, dB).
    """

    input_name = "degraded"
    sources = ("clean",)

    def __init__(self, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], **kwargs) -> None:
        super().__init__(**kwargs)
        self.loss = loss

    # --- model -------------------------------------------------------------------------------------
    def restore(self, degraded: torch.Tensor) -> torch.Tensor:
        """Degraded ``(B, C, T)`` -> restored ``(B, C, T)`` in one pass."""
        raise NotImplementedError

    def forward(self, degraded: torch.Tensor) -> torch.Tensor:
        return self.restore(degraded)

    def estimate(self, degraded: torch.Tensor) -> torch.Tensor:
        """Degraded ``(B, C, T)`` -> ``(B, 1, C, T)``: the restoration as the one source, ``"clean"``."""
        return self.restore(degraded).unsqueeze(1)

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
        clean = clean[:, 0]
        est = self(degraded)
        # Per item, averaged over the epoch's items of every process (System.log_items).
        self.log_items(
            {
                "val/loss": per_item(self.loss, est, clean),
                "val/sdr": global_sdr(clean, est),
                "val/lsd": log_spectral_distance(clean, est, self.sample_rate),
            },
            prog_bar=["val/sdr"],
        )


def input_band_bins(n_fft: int, sample_rate: int, input_rate: int | None) -> int:
    """STFT bins of an ``n_fft``-point STFT at ``sample_rate`` Hz that carry the band of audio at
    ``input_rate`` Hz (all ``n_fft // 2 + 1`` when ``input_rate`` is ``None`` or ``sample_rate``).

    Raises:
        ValueError: ``input_rate`` is above ``sample_rate``.
    """
    if input_rate is None or int(input_rate) == int(sample_rate):
        return n_fft // 2 + 1
    if int(input_rate) > int(sample_rate):
        raise ValueError(
            f"model.input_rate={input_rate} Hz must not exceed model.sample_rate={sample_rate} Hz (the output's)"
        )
    return band_bins(n_fft, int(sample_rate), int(input_rate) / 2)


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

    Hi-res restoration (``input_rate`` below ``sample_rate``): the input is the MP3 resampled to
    ``sample_rate``, so its STFT is empty above ``input_rate / 2``. The network sees only the bins below
    (:func:`input_band_bins`) and predicts every bin of ``sample_rate`` (its upsampling head, called with
    ``output_bins``); above ``input_rate / 2`` the residual builds the magnitude up from the log floor,
    with the degraded STFT's phase there (resampler residue: in effect a random phase).

    Args:
        net: factory (``_partial_: true``) called as ``net(num_bins=F_in, audio_channels=C,
            outputs_per_bin=1 or 2)`` (plus ``output_bins=n_fft // 2 + 1`` for an upsampling head), mapping
            ``(B, C, F_in, N)`` to ``(B, C, outputs_per_bin, n_fft // 2 + 1, N)``; ``F_in`` is
            ``n_fft // 2 + 1`` unless ``input_rate`` is below ``sample_rate``.
        audio_channels: channels of the audio.
        n_fft, hop_length: STFT size and hop in samples.
        complex_output: predict a complex residual instead of a log-magnitude residual.
        eps: magnitude floor of the log.
        input_rate: rate (Hz) whose band the input carries; ``None`` or ``sample_rate``: the full band.
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
        input_rate: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.stft = Stft(n_fft, hop_length)
        self.complex_output, self.eps = bool(complex_output), float(eps)
        self.audio_channels = int(audio_channels)
        self.input_bins = input_band_bins(n_fft, self.sample_rate, input_rate)
        bins = n_fft // 2 + 1
        self.net = net(
            num_bins=self.input_bins,
            audio_channels=self.audio_channels,
            outputs_per_bin=2 if complex_output else 1,
            **({"output_bins": bins} if self.input_bins < bins else {}),
        )

    @property
    def align(self) -> int:
        return self.stft.hop_length

    def restore(self, degraded: torch.Tensor) -> torch.Tensor:
        spec = self.stft(degraded)  # (B, C, F, N) complex
        log_mag = torch.log(spec.abs() + self.eps)
        out = self.net(log_mag[:, :, : self.input_bins])  # (B, C, K, F, N): every bin F
        if self.complex_output:
            est = spec + torch.complex(out[:, :, 0], out[:, :, 1])
        else:
            est = torch.polar(torch.exp(log_mag + out[:, :, 0]), spec.angle())
        return self.stft.inverse(est, degraded.shape[-1])
