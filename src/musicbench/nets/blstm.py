"""Bidirectional LSTM over STFT frames (frequency bins of all channels as the features of a frame)."""

from __future__ import annotations

import torch
from torch import nn


class BLSTM(nn.Module):
    """A frame-sequence BLSTM for spectrogram-to-spectrogram regression.

    Each frame's ``channels x bins`` input values are normalised (LayerNorm), projected to ``hidden_size``,
    run through ``num_layers`` bidirectional LSTM layers (``hidden_size`` per direction) and projected back to
    ``channels x outputs_per_bin x output_bins`` values. The last projection starts at zero, so an untrained
    network outputs zeros: a residual model built on it starts as the identity (the MP3 input). With
    ``output_bins > num_bins`` the last projection is an upsampling head: it predicts the bins of a higher
    rate (bandwidth extension) from the bins the input has.

    Args:
        num_bins: frequency bins per frame (``n_fft // 2 + 1``).
        audio_channels: channels of the spectrogram.
        outputs_per_bin: values predicted per channel and bin (1: a log-magnitude residual; 2: a complex
            residual, real and imaginary).
        hidden_size: LSTM width per direction.
        num_layers: stacked BLSTM layers.
        dropout: dropout between LSTM layers.
        output_bins: frequency bins per output frame; ``None``: ``num_bins``.

    Input ``(batch, audio_channels, num_bins, frames)``; output
    ``(batch, audio_channels, outputs_per_bin, output_bins, frames)``.
    """

    def __init__(
        self,
        num_bins: int,
        audio_channels: int = 2,
        outputs_per_bin: int = 1,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
        output_bins: int | None = None,
    ) -> None:
        super().__init__()
        if num_layers < 1 or hidden_size < 1:
            raise ValueError(
                f"BLSTM needs num_layers >= 1 and hidden_size >= 1, got {num_layers}, {hidden_size}"
            )
        self.num_bins, self.audio_channels, self.outputs_per_bin = num_bins, audio_channels, outputs_per_bin
        self.output_bins = int(output_bins or num_bins)
        if self.output_bins < num_bins:
            raise ValueError(f"BLSTM output_bins={output_bins} must be >= num_bins={num_bins}")
        features = audio_channels * num_bins
        self.norm = nn.LayerNorm(features)
        self.inp = nn.Linear(features, hidden_size)
        self.lstm = nn.LSTM(
            hidden_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.out = nn.Linear(2 * hidden_size, audio_channels * outputs_per_bin * self.output_bins)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, n = x.shape
        if (c, f) != (self.audio_channels, self.num_bins):
            raise ValueError(
                f"BLSTM built for {self.audio_channels} channels x {self.num_bins} bins, got input {tuple(x.shape)}"
            )
        frames = x.permute(0, 3, 1, 2).reshape(b, n, c * f)  # (B, N, C*F): one feature vector per frame
        h, _ = self.lstm(torch.tanh(self.inp(self.norm(frames))))
        y = self.out(h).reshape(b, n, c, self.outputs_per_bin, self.output_bins)
        return y.permute(0, 2, 3, 4, 1)
