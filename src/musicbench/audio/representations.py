"""Real-valued time-frequency representations of complex STFTs, for networks that regress spectrograms.

Each representation maps a complex ``(B, C, F, N)`` STFT to real features ``(B, K * C, F, N)`` and back.
``decode`` also receives the STFT of the network's input (the degraded signal), for representations that
borrow its phase. Built with ``_target_`` in configs (e.g. ``model.representation``).
"""

from __future__ import annotations

import torch


class CompressedComplex:
    """Real and imaginary parts of ``|X|^alpha e^{i angle(X)}`` (``K = 2``): magnitude compression keeps the
    loud low bins from dominating while the phase stays learnable (as in Lattner & Nistal 2021).

    Args:
        alpha: magnitude exponent in (0, 1]; 0.5 is the usual choice.
    """

    channels_per_audio_channel = 2

    def __init__(self, alpha: float = 0.5) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"CompressedComplex alpha must be in (0, 1], got {alpha}")
        self.alpha = float(alpha)

    def encode(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex ``(B, C, F, N)`` -> real ``(B, 2C, F, N)`` (channel ``2c`` real, ``2c + 1`` imaginary)."""
        mag = spec.abs()
        # |X|^alpha e^{i phi} = X |X|^(alpha - 1); the clamp keeps the exact zeros of silence finite.
        comp = spec * mag.clamp_min(1e-12).pow(self.alpha - 1)
        b, c, f, n = spec.shape
        return torch.view_as_real(comp).permute(0, 1, 4, 2, 3).reshape(b, 2 * c, f, n)

    def decode(self, features: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """Real ``(B, 2C, F, N)`` -> complex ``(B, C, F, N)``; ``reference`` is not needed."""
        b, c2, f, n = features.shape
        pairs = features.reshape(b, c2 // 2, 2, f, n).permute(0, 1, 3, 4, 2).contiguous()
        comp = torch.view_as_complex(pairs)
        mag = comp.abs()
        return comp * mag.clamp_min(1e-12).pow(1 / self.alpha - 1)


class LogMagnitude:
    """``log(|X| + eps)`` (``K = 1``); ``decode`` takes the phase of the reference (degraded) STFT.

    Args:
        eps: magnitude floor of the log (linear amplitude).
    """

    channels_per_audio_channel = 1

    def __init__(self, eps: float = 1e-5) -> None:
        self.eps = float(eps)

    def encode(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex ``(B, C, F, N)`` -> real ``(B, C, F, N)`` log-magnitudes."""
        return torch.log(spec.abs() + self.eps)

    def decode(self, features: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """Log-magnitudes ``(B, C, F, N)`` -> complex ``(B, C, F, N)`` with the phase of ``reference``."""
        if reference is None:
            raise ValueError("LogMagnitude.decode needs the reference STFT for the phase")
        return torch.polar((features.exp() - self.eps).clamp_min(0), reference.angle())
