"""Butterworth band-pass filters in second-order sections, applied causally (``scipy.signal.sosfilt``).

The hearing-aid chain ends with a band-pass (e.g. 250 Hz - 18.5 kHz) that removes what the earpiece
cannot reproduce. The design is scipy's ``butter(..., output="sos")``; filtering runs scipy's ``sosfilt``
on float64 CPU copies, so the result is exactly scipy's, returned on the input's device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.signal import butter, sosfilt


def butter_bandpass_sos(
    low_hz: float, high_hz: float, sample_rate: float, order: int = 4, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``(order, 6)`` second-order sections of a digital Butterworth band-pass.

    Args:
        low_hz, high_hz: the -3 dB edges in Hz, ``0 < low_hz < high_hz < sample_rate / 2``.
        sample_rate: in Hz.
        order: of the low-pass prototype (scipy's ``N``); the band-pass has ``2 * order`` poles, in
            ``order`` sections of ``[b0, b1, b2, a0, a1, a2]``.
        dtype: of the returned coefficients.
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"order must be a positive integer, got {order!r}")
    if not (math.isfinite(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    nyquist = sample_rate / 2
    if not (math.isfinite(low_hz) and math.isfinite(high_hz) and 0 < low_hz < high_hz < nyquist):
        raise ValueError(
            f"band edges must satisfy 0 < low_hz < high_hz < {nyquist} Hz (Nyquist at sample_rate "
            f"{sample_rate} Hz), got low_hz={low_hz!r}, high_hz={high_hz!r}"
        )
    sos = butter(order, [low_hz, high_hz], btype="bandpass", fs=sample_rate, output="sos")
    return torch.as_tensor(np.asarray(sos, dtype=np.float64), dtype=dtype)


def sos_filter(sos: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
    """Causal IIR filtering of ``signal (..., T)`` by ``sos (n_sections, 6)`` (``scipy.signal.sosfilt``).

    Zero initial state; float64 on the CPU; returned as ``(..., T)`` float64 on ``signal``'s device.
    """
    if sos.ndim != 2 or sos.shape[-1] != 6 or sos.shape[0] < 1:
        raise ValueError(f"sos must have shape (n_sections, 6), got {tuple(sos.shape)}")
    if signal.ndim == 0:
        raise ValueError("signal must have a samples dimension, got a scalar")
    if signal.is_complex() or not signal.is_floating_point():
        raise TypeError(f"signal must be a real floating-point tensor, got {signal.dtype}")
    coefficients = sos.detach().to(device="cpu", dtype=torch.float64).numpy()
    if not np.isfinite(coefficients).all() or not (coefficients[:, 3] != 0).all():
        raise ValueError("sos must be finite with non-zero a0 in every section")
    x = signal.detach().to(device="cpu", dtype=torch.float64).numpy()
    return torch.from_numpy(np.asarray(sosfilt(coefficients, x, axis=-1))).to(signal.device)
