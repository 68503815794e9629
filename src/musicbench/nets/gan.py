"""Generator and critic for stochastic spectrogram restoration (after Lattner & Nistal 2021).

The generator is a convolutional encoder-decoder over the degraded signal's time-frequency features with
skip connections; a noise tensor ``z ~ N(0, I)`` is concatenated to the bottleneck features, so that
different draws give different plausible restorations (``z_dim = 0``: a deterministic network). The critic
scores patches of a candidate spectrogram given the degraded one (a conditional PatchGAN without batch
norm, which would break the per-sample gradient penalty of WGAN-GP).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    freq, frames = x.shape[-2:]
    return F.pad(x, (0, (-frames) % multiple, 0, (-freq) % multiple))


class _Down(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, stride=2, padding=1)
        self.norm = nn.GroupNorm(min(8, cout), cout)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
        self.norm = nn.GroupNorm(min(8, cout), cout)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class SpectralGenerator(nn.Module):
    """Conditional generator: features of the degraded STFT (+ noise) -> a residual on those features.

    Args:
        in_channels: feature channels of the input (e.g. ``2 * audio_channels`` for compressed complex).
        out_channels: feature channels of the output residual (usually ``in_channels``).
        z_dim: noise channels concatenated at the bottleneck; 0 for the deterministic variant.
        depth: stride-2 down/up-sampling levels (time and frequency).
        base_channels: width of the first level; doubles per level, capped at ``max_channels``.
        max_channels: width cap.

    ``forward(x, z=None, generator=None)``: ``x`` is ``(B, in_channels, F, N)`` (any size; padded internally
    to a multiple of ``2**depth``); ``z`` is ``(B, z_dim, F_b, N_b)`` from :meth:`noise_shape`, drawn from
    ``generator`` when omitted. Returns ``(B, out_channels, F, N)``. The output layer starts at zero, so
    an untrained residual generator returns its input unchanged.
    """

    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 4,
        z_dim: int = 32,
        depth: int = 4,
        base_channels: int = 32,
        max_channels: int = 256,
    ) -> None:
        super().__init__()
        if depth < 1 or z_dim < 0:
            raise ValueError(f"SpectralGenerator needs depth >= 1 and z_dim >= 0, got {depth}, {z_dim}")
        self.z_dim, self.depth = int(z_dim), int(depth)
        widths = [min(base_channels * 2**i, max_channels) for i in range(depth)]
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList(
            _Down(widths[max(i - 1, 0)] if i else widths[0], widths[i]) for i in range(depth)
        )
        self.bottleneck = nn.Sequential(
            nn.Conv2d(widths[-1] + self.z_dim, widths[-1], 3, padding=1), nn.LeakyReLU(0.2)
        )
        self.up = nn.ModuleList()
        for i in range(depth - 1, -1, -1):
            cout = widths[i - 1] if i else widths[0]
            self.up.append(_Up(widths[i] * 2, cout))
        self.head = nn.Conv2d(widths[0] * 2, out_channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def noise_shape(self, x_shape: torch.Size | tuple[int, ...]) -> tuple[int, int, int, int]:
        """Shape of ``z`` for an input of shape ``(B, C, F, N)``: ``(B, z_dim, ceil(F / 2**d), ceil(N / 2**d))``."""
        mult = 2**self.depth
        b, _, f, n = x_shape
        return (b, self.z_dim, -(-f // mult), -(-n // mult))

    def forward(
        self, x: torch.Tensor, z: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        freq, frames = x.shape[-2:]
        shape = self.noise_shape(x.shape)
        h = self.stem(_pad_to_multiple(x, 2**self.depth))
        skips = [h]
        for block in self.down:
            h = block(h)
            skips.append(h)
        if self.z_dim:
            if z is None:
                z = torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
            elif tuple(z.shape) != shape:
                raise ValueError(
                    f"z must have shape {shape} for input {tuple(x.shape)}, got {tuple(z.shape)}"
                )
            h = torch.cat((h, z), dim=1)
        h = self.bottleneck(h)
        for block in self.up:
            h = block(torch.cat((h, skips.pop()), dim=1))
        out = self.head(torch.cat((h, skips.pop()), dim=1))
        return out[..., :freq, :frames]


class SpectralCritic(nn.Module):
    """Conditional patch critic over (degraded, candidate) feature pairs.

    Args:
        in_channels: feature channels of one spectrogram (the critic sees ``2 * in_channels``).
        depth: stride-2 conv layers; each output score sees a patch of ~``2**(depth + 1)`` bins x frames.
        base_channels: width of the first layer; doubles per layer, capped at ``max_channels``.
        spectral_norm: wrap the convs in spectral normalisation (useful with hinge / LS losses).

    ``forward(condition, candidate)`` with both ``(B, in_channels, F, N)`` returns ``(scores, features)``:
    ``(B, 1, F', N')`` unbounded patch scores and the list of hidden activations (for feature matching).
    """

    def __init__(
        self,
        in_channels: int = 4,
        depth: int = 4,
        base_channels: int = 32,
        max_channels: int = 256,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()

        def wrap(conv: nn.Conv2d) -> nn.Module:
            return nn.utils.parametrizations.spectral_norm(conv) if spectral_norm else conv

        layers, cin = [], 2 * in_channels
        for i in range(depth):
            cout = min(base_channels * 2**i, max_channels)
            layers.append(
                nn.Sequential(wrap(nn.Conv2d(cin, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2))
            )
            cin = cout
        self.layers = nn.ModuleList(layers)
        self.head = wrap(nn.Conv2d(cin, 1, 3, padding=1))

    def forward(
        self, condition: torch.Tensor, candidate: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if condition.shape != candidate.shape:
            raise ValueError(
                f"critic inputs differ in shape: {tuple(condition.shape)} vs {tuple(candidate.shape)}"
            )
        h = torch.cat((condition, candidate), dim=1)
        features = []
        for layer in self.layers:
            h = layer(h)
            features.append(h)
        return self.head(h), features
