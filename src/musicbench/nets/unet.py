"""Spleeter-style U-Net over magnitude spectrograms (Jansson et al. 2017; Hennequin et al. 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _EncoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size: int, negative_slope: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=2, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(cout)
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class _DecoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        pad = kernel_size // 2
        # output_padding=1 makes a stride-2 transposed conv exactly double the size, mirroring the encoder.
        self.conv = nn.ConvTranspose2d(cin, cout, kernel_size, stride=2, padding=pad, output_padding=1)
        self.act = nn.ReLU()
        self.norm = nn.BatchNorm2d(cout)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Spleeter order: transposed conv -> ReLU -> batch norm -> dropout.
        return self.drop(self.norm(self.act(self.conv(x))))


class UNet(nn.Module):
    """U-Net mask estimator.

    Six 5x5 stride-2 conv blocks (16 -> 512 channels by default) with batch norm and leaky ReLU, a
    transposed-conv decoder with skip connections and dropout on its first three blocks, and a sigmoid
    output: one mask value per output channel, frequency bin and frame.

    Args:
        in_channels: input channels (audio channels of the magnitude spectrogram, e.g. 2 for stereo).
        out_channels: mask channels (e.g. ``num_sources * audio_channels``).
        depth: number of encoder (and decoder) blocks.
        base_channels: channels of the first block; doubles every block.
        kernel_size: conv kernel size (odd).
        dropout: dropout probability of the first ``num_dropout`` decoder blocks.
        num_dropout: how many of the first decoder blocks use dropout.
        negative_slope: leaky ReLU slope of the encoder.
        num_bins: frequency bins of the input; not used (the network is convolutional: any size), taken
            because the separator gives every mask network its bins.

    Input ``(batch, in_channels, freq, frames)``, any size (padded internally to a multiple of
    ``2**depth``); output ``(batch, out_channels, freq, frames)`` in [0, 1].
    """

    def __init__(
        self,
        in_channels: int = 2,
        out_channels: int = 2,
        depth: int = 6,
        base_channels: int = 16,
        kernel_size: int = 5,
        dropout: float = 0.5,
        num_dropout: int = 3,
        negative_slope: float = 0.2,
        num_bins: int | None = None,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"UNet depth must be >= 1, got {depth}")
        if kernel_size % 2 != 1:
            raise ValueError(f"UNet kernel_size must be odd, got {kernel_size}")
        widths = [base_channels * 2**i for i in range(depth)]
        self.depth = depth
        self.encoder = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.encoder.append(_EncoderBlock(cin, w, kernel_size, negative_slope))
            cin = w
        self.decoder = nn.ModuleList()
        for i in range(depth - 1, 0, -1):
            # Decoder block i maps the (concatenated) features to the width of encoder level i-1.
            cin_dec = widths[i] if i == depth - 1 else widths[i] * 2
            drop = dropout if (depth - 1 - i) < num_dropout else 0.0
            self.decoder.append(_DecoderBlock(cin_dec, widths[i - 1], kernel_size, drop))
        last_in = widths[0] * 2 if depth > 1 else widths[0]
        self.head = nn.ConvTranspose2d(
            last_in, out_channels, kernel_size, stride=2, padding=kernel_size // 2, output_padding=1
        )

    @property
    def frame_multiple(self) -> int:
        """Shifts (in frames) under which the network is equivariant: its total stride ``2**depth``."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        freq, frames = x.shape[-2:]
        mult = 2**self.depth
        pad_f, pad_t = (-freq) % mult, (-frames) % mult
        x = F.pad(x, (0, pad_t, 0, pad_f))
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for block in self.decoder:
            x = block(x)
            x = torch.cat([x, skips.pop()], dim=1)
        mask = torch.sigmoid(self.head(x))
        return mask[..., :freq, :frames]
