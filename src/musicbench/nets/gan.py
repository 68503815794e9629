"""Generator and critic for stochastic spectrogram restoration (after Lattner & Nistal 2021).

The generator is a convolutional encoder-decoder over the degraded signal's time-frequency features with
skip connections; noise ``z ~ N(0, I)`` is concatenated to the features at several resolutions, from the
bottleneck to the output layer, so that different draws give different plausible restorations
(``z_dim = 0``: a deterministic network). The critic scores patches of a candidate spectrogram given the
degraded one (a conditional PatchGAN without batch norm, which would break the per-sample gradient
penalty of WGAN-GP).
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
        z_dim: noise channels concatenated at each noise level; 0 for the deterministic variant.
        depth: stride-2 down/up-sampling levels (time and frequency).
        base_channels: width of the first level; doubles per level, capped at ``max_channels``.
        max_channels: width cap.
        noise_levels: how many resolutions get noise, from the bottleneck up: 1 (default; the layout of
            checkpoints saved without this argument) the bottleneck alone, ``None`` all ``depth + 1`` of
            them (the bottleneck, the input of every upsampling block that follows and the output layer at
            full resolution). Noise at the bottleneck alone is easy to ignore: the skips carry all the
            decoder needs, so training drops it; ``conf/model/gan_restorer.yaml`` sets ``None``.

    Noise level ``l`` (``0``: the bottleneck) has the resolution ``1 / 2**(depth - l)`` of the padded input;
    :meth:`noise_shapes` gives the shapes. ``forward(x, z=None, generator=None)``: ``x`` is
    ``(B, in_channels, F, N)`` (any size; padded internally to a multiple of ``2**depth``); ``z`` is the list
    of tensors of :meth:`noise_shapes` (a single tensor when there is one level), drawn from ``generator``
    in level order when omitted (the same seed gives the same output). Returns ``(B, out_channels, F, N)``.
    The output layer starts at zero, so an untrained residual generator returns its input unchanged.
    """

    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 4,
        z_dim: int = 32,
        depth: int = 4,
        base_channels: int = 32,
        max_channels: int = 256,
        noise_levels: int | None = 1,
    ) -> None:
        super().__init__()
        levels = depth + 1 if noise_levels is None else int(noise_levels)
        if depth < 1 or z_dim < 0 or not 1 <= levels <= depth + 1:
            raise ValueError(
                "SpectralGenerator needs depth >= 1, z_dim >= 0 and 1 <= noise_levels <= depth + 1, "
                f"got depth={depth}, z_dim={z_dim}, noise_levels={noise_levels}"
            )
        self.z_dim, self.depth = int(z_dim), int(depth)
        self.noise_levels = levels if self.z_dim else 0
        widths = [min(base_channels * 2**i, max_channels) for i in range(depth)]
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList(
            _Down(widths[max(i - 1, 0)] if i else widths[0], widths[i]) for i in range(depth)
        )
        self.bottleneck = nn.Sequential(
            nn.Conv2d(widths[-1] + self._noise(0), widths[-1], 3, padding=1), nn.LeakyReLU(0.2)
        )
        # up[j] (j >= 1) and the head take noise level j and depth: its input has resolution 1 / 2**(depth - j)
        self.up = nn.ModuleList()
        for j, i in enumerate(range(depth - 1, -1, -1)):
            cout = widths[i - 1] if i else widths[0]
            self.up.append(_Up(widths[i] * 2 + (self._noise(j) if j else 0), cout))
        self.head = nn.Conv2d(widths[0] * 2 + self._noise(depth), out_channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _noise(self, level: int) -> int:
        """Noise channels at ``level`` (0: the bottleneck, ``depth``: full resolution)."""
        return self.z_dim if level < self.noise_levels else 0

    def noise_shapes(self, x_shape: torch.Size | tuple[int, ...]) -> list[tuple[int, int, int, int]]:
        """Shapes of ``z`` for an input ``(B, C, F, N)``, one per noise level from the bottleneck up: level
        ``l`` is ``(B, z_dim, F_p / 2**(depth - l), N_p / 2**(depth - l))`` with ``F_p, N_p`` the input's
        sizes padded to a multiple of ``2**depth`` (level 0: ``ceil(F / 2**depth)``); empty when
        ``z_dim = 0``."""
        mult = 2**self.depth
        b, _, f, n = x_shape
        f, n = -(-f // mult) * mult, -(-n // mult) * mult
        return [
            (b, self.z_dim, f // 2 ** (self.depth - lvl), n // 2 ** (self.depth - lvl))
            for lvl in range(self.noise_levels)
        ]

    def draw_noise(
        self,
        x_shape: torch.Size | tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> list[torch.Tensor]:
        """``z ~ N(0, I)`` of :meth:`noise_shapes`, drawn from ``generator`` level by level."""
        return [
            torch.randn(shape, generator=generator, device=device, dtype=dtype)
            for shape in self.noise_shapes(x_shape)
        ]

    def forward(
        self,
        x: torch.Tensor,
        z: torch.Tensor | list[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        freq, frames = x.shape[-2:]
        shapes = self.noise_shapes(x.shape)
        if z is None:
            z = self.draw_noise(x.shape, generator, x.device, x.dtype)
        elif isinstance(z, torch.Tensor):
            z = [z]
        if [tuple(t.shape) for t in z] != shapes:
            raise ValueError(
                f"z must have shapes {shapes} for input {tuple(x.shape)}, got {[tuple(t.shape) for t in z]}"
            )
        noise = list(z) + [None] * (self.depth + 1 - len(z))

        def cat(*parts: torch.Tensor | None) -> torch.Tensor:
            return torch.cat([p for p in parts if p is not None], dim=1)

        h = self.stem(_pad_to_multiple(x, 2**self.depth))
        skips = [h]
        for block in self.down:
            h = block(h)
            skips.append(h)
        h = self.bottleneck(cat(h, noise[0]))
        for j, block in enumerate(self.up):
            h = block(cat(h, skips.pop(), noise[j] if j else None))
        out = self.head(cat(h, skips.pop(), noise[self.depth]))
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
