"""Open-Unmix-style mask estimator over magnitude spectrograms (Stöter et al. 2019, JOSS 4(41) 1667)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _UnmixBranch(nn.Module):
    """One source's Open-Unmix network: ``(frames, batch, channels, bins)`` magnitudes -> ReLU masks of the
    same shape (see :class:`OpenUnmix`)."""

    def __init__(
        self, channels: int, num_bins: int, hidden_size: int, num_layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.channels, self.num_bins, self.hidden_size = channels, num_bins, hidden_size
        # Learnable input/output scaling per bin, shared by the channels (Open-Unmix starts the input ones
        # at the training set's statistics; here at the identity, the batch norms below do the rest).
        self.input_mean = nn.Parameter(torch.zeros(num_bins))
        self.input_scale = nn.Parameter(torch.ones(num_bins))
        self.output_scale = nn.Parameter(torch.ones(num_bins))
        self.output_mean = nn.Parameter(torch.ones(num_bins))
        # Biases are left out where a batch norm follows (its shift replaces them), as in Open-Unmix.
        self.fc1 = nn.Linear(channels * num_bins, hidden_size, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden_size)
        self.lstm = nn.LSTM(
            hidden_size,
            hidden_size // 2,
            num_layers=num_layers,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.fc2 = nn.Linear(2 * hidden_size, hidden_size, bias=False)  # input: the skip concatenation
        self.bn2 = nn.BatchNorm1d(hidden_size)
        self.fc3 = nn.Linear(hidden_size, channels * num_bins, bias=False)
        self.bn3 = nn.BatchNorm1d(channels * num_bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, b, c, f = x.shape
        x = (x + self.input_mean) * self.input_scale
        x = self.bn1(self.fc1(x.reshape(n * b, c * f)))
        x = torch.tanh(x).reshape(n, b, self.hidden_size)
        h, _ = self.lstm(x)  # (frames, batch, hidden): hidden/2 per direction
        x = torch.cat([x, h], dim=-1)  # skip connection around the BLSTM
        x = F.relu(self.bn2(self.fc2(x.reshape(n * b, 2 * self.hidden_size))))
        x = self.bn3(self.fc3(x)).reshape(n, b, c, f)
        return F.relu(x * self.output_scale + self.output_mean)


class OpenUnmix(nn.Module):
    """Open-Unmix mask estimator: one network per source, each a 3-layer BLSTM between dense layers.

    Per source, every frame's ``channels x num_bins`` magnitudes are shifted and scaled per bin (learnable
    ``input_mean``/``input_scale``), projected to ``hidden_size`` (fc + batch norm + tanh), run through
    ``num_layers`` bidirectional LSTM layers (``hidden_size // 2`` per direction), concatenated with the
    LSTM's input (skip connection), and mapped back to ``channels x num_bins`` values by two dense layers
    (fc + batch norm + ReLU, fc + batch norm), scaled per bin (``output_scale``/``output_mean``) and passed
    through a ReLU: a non-negative, unbounded mask. :class:`~musicbench.models.separation.MaskSeparator`
    multiplies it with the mixture's magnitude (Open-Unmix's output, ``mask x input``) and trains that
    product against the sources' magnitudes.

    The networks of the sources share nothing (Open-Unmix trains one model per target); this module runs
    them side by side so that it fits the mask-network interface of the U-Net.

    Args:
        in_channels: audio channels of the magnitude spectrogram (2 for stereo).
        out_channels: mask channels, ``num_sources * in_channels``; one network per source.
        num_bins: frequency bins of the input (the separator's ``max_bin``).
        hidden_size: width of the dense layers and of the BLSTM (both directions together); even.
        num_layers: stacked BLSTM layers (3 in Open-Unmix).
        dropout: dropout between the LSTM layers (0.4 in Open-Unmix).

    Input ``(batch, in_channels, num_bins, frames)`` magnitudes; output
    ``(batch, out_channels, num_bins, frames)`` masks ``>= 0``, source-major (source 0's channels first).
    """

    def __init__(
        self,
        in_channels: int = 2,
        out_channels: int = 2,
        num_bins: int = 1487,
        hidden_size: int = 512,
        num_layers: int = 3,
        dropout: float = 0.4,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels % in_channels != 0 or out_channels < in_channels:
            raise ValueError(
                f"OpenUnmix out_channels must be a positive multiple of in_channels (sources x channels), "
                f"got in_channels={in_channels}, out_channels={out_channels}"
            )
        if num_bins < 1 or num_layers < 1 or hidden_size < 2 or hidden_size % 2:
            raise ValueError(
                "OpenUnmix needs num_bins >= 1, num_layers >= 1 and an even hidden_size >= 2, got "
                f"num_bins={num_bins}, num_layers={num_layers}, hidden_size={hidden_size}"
            )
        self.in_channels, self.num_bins = in_channels, num_bins
        self.branches = nn.ModuleList(
            _UnmixBranch(in_channels, num_bins, hidden_size, num_layers, dropout)
            for _ in range(out_channels // in_channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, n = x.shape
        if (c, f) != (self.in_channels, self.num_bins):
            raise ValueError(
                f"OpenUnmix built for {self.in_channels} channels x {self.num_bins} bins, got input {tuple(x.shape)}"
            )
        frames = x.permute(3, 0, 1, 2)  # (frames, batch, channels, bins): the LSTM runs over frames
        masks = torch.cat([branch(frames) for branch in self.branches], dim=2)  # (N, B, S*C, F)
        return masks.permute(1, 2, 3, 0)
