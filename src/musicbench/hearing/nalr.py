"""NAL-R prescription filters (Byrne & Dillon 1986) as in pyclarity's ``clarity.enhancer.nalr.NALR``.

The design is pyclarity's, step by step, in torch and batched over audiograms:

1. resample the audiogram to 250, 500, 1000, 2000, 4000, 6000 Hz (log-frequency interpolation);
2. NAL-R gains ``x_ave + 0.31 * HL + bias`` in dB, clipped at 0 dB, where ``x_ave`` depends on the summed
   loss at 500 Hz - 2 kHz;
3. the gains, extended flat to 0 Hz and Nyquist, are interpolated linearly at ``nfir + 1`` uniformly
   spaced frequencies and converted to linear gain;
4. a linear-phase FIR of ``nfir + 1`` taps from MATLAB's ``fir2`` frequency-sampling method (pyclarity's
   ``firwin2``): piecewise-linear magnitude on a 512-point (or next power of two) grid, a delay of
   ``nfir / 2`` samples, inverse FFT, Hamming window.

An audiogram whose largest (resampled) threshold is <= 0 dB HL gets the pure delay filter, as in pyclarity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import torch

from musicbench.audio.fft import fft_convolve
from musicbench.hearing.audiogram import Audiogram, Vector, interpolate_levels

NALR_FREQUENCIES: Final = (250, 500, 1000, 2000, 4000, 6000)  # Hz
NALR_BIAS_DB: Final = (-17, -8, 1, -1, -2, -2)  # dB, at NALR_FREQUENCIES


def nalr_delay(
    nfir: int, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> torch.Tensor:
    """``(nfir + 1,)`` the flat filter with the NAL-R filter's delay: a unit impulse at ``nfir // 2``."""
    _check_nfir(nfir)
    delay = torch.zeros(nfir + 1, dtype=dtype, device=device)
    delay[nfir // 2] = 1.0
    return delay


def nalr_fir(
    audiogram: Audiogram | Sequence[Audiogram] | torch.Tensor,
    cfs: Vector | None = None,
    nfir: int = 220,
    sample_rate: int = 44100,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """NAL-R FIR filters for one or many audiograms (pyclarity's ``NALR(nfir, sample_rate).build``).

    Args:
        audiogram: an ``Audiogram``; a sequence of them (each may have its own frequencies); or a
            ``(..., n_freqs)`` tensor of thresholds in dB HL measured at ``cfs``.
        cfs: ``(n_freqs,)`` centre frequencies in Hz of a tensor ``audiogram``; must be None otherwise.
        nfir: filter order; the filters have ``nfir + 1`` taps and a delay of ``nfir / 2`` samples.
        sample_rate: of the signals to filter, in Hz; must exceed 12 kHz (Nyquist above 6 kHz).
        dtype, device: of the returned filters (the tensor's device when ``audiogram`` is a tensor and
            ``device`` is None).

    Returns:
        ``(fir, delay)``: ``fir`` is batched like the input: ``(nfir + 1,)`` for one audiogram,
        ``(len(audiograms), nfir + 1)`` for a sequence, ``(..., nfir + 1)`` for a tensor; ``delay`` is the
        ``(nfir + 1,)`` unit impulse at ``nfir // 2`` (what pyclarity's ``build`` returns second).
    """
    _check_nfir(nfir)
    fmax = 0.5 * sample_rate
    if not fmax > NALR_FREQUENCIES[-1]:
        # Below this the extended gain table [0, 250, ..., 6000, fmax] is not increasing.
        raise ValueError(
            f"sample_rate must exceed {2 * NALR_FREQUENCIES[-1]} Hz for NAL-R, got {sample_rate}"
        )
    levels = _nalr_levels(audiogram, cfs, dtype, device)
    gain_db = _nalr_gains_db(levels)
    fir = _fir2(_gain_at_fir_grid(gain_db, nfir, fmax), nfir)
    delay = nalr_delay(nfir, dtype=levels.dtype, device=levels.device)
    # No loss anywhere: pyclarity returns the pure delay rather than the (non-flat) prescription.
    max_loss = levels.amax(dim=-1, keepdim=True)
    fir = torch.where(max_loss > 0, fir, delay)
    return fir, delay


def apply_nalr(fir: torch.Tensor, signal: torch.Tensor, compensate_delay: bool = False) -> torch.Tensor:
    """Filter ``signal`` with NAL-R FIRs (pyclarity's ``NALR.apply``, i.e. ``np.convolve`` full output).

    FFT convolution, batched: the leading dimensions of ``fir`` and ``signal`` broadcast, so one listener's
    ``(L,)`` filter applies to a whole ``(batch, channels, T)`` signal and ``(batch, 1, L)`` filters give
    each item its own listener.

    Args:
        fir: ``(..., L)`` filter taps (``L = nfir + 1``).
        signal: ``(..., T)`` samples.
        compensate_delay: drop the filter's ``(L - 1) // 2``-sample delay and return ``(..., T)`` samples
            aligned with the input, instead of pyclarity's full ``(..., T + L - 1)`` convolution.

    Returns:
        ``(..., T + L - 1)`` (or ``(..., T)``) filtered samples, in the promoted dtype of ``fir`` and
        ``signal`` (float64 with the default filters).
    """
    if fir.ndim == 0 or signal.ndim == 0:
        raise ValueError(f"fir {tuple(fir.shape)} and signal {tuple(signal.shape)} need a samples dimension")
    if fir.shape[-1] == 0 or signal.shape[-1] == 0:
        raise ValueError(f"fir {tuple(fir.shape)} and signal {tuple(signal.shape)} must not be empty")
    if not (fir.is_floating_point() or signal.is_floating_point()):
        raise TypeError("fir or signal must be floating point")
    dtype = torch.promote_types(fir.dtype, signal.dtype)
    taps, samples = fir.shape[-1], signal.shape[-1]
    out = fft_convolve(signal.to(dtype), fir.to(dtype), n_out=samples + taps - 1)
    if compensate_delay:
        start = (taps - 1) // 2
        out = out[..., start : start + samples]
    return out


class NALR:
    """pyclarity's ``NALR(nfir, sample_rate)`` interface on top of ``nalr_fir`` and ``apply_nalr``."""

    def __init__(self, nfir: int = 220, sample_rate: int = 44100) -> None:
        _check_nfir(nfir)
        self.nfir = nfir
        self.sample_rate = sample_rate
        self.delay = nalr_delay(nfir)

    def build(
        self, audiogram: Audiogram | Sequence[Audiogram] | torch.Tensor, cfs: Vector | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(fir (..., nfir + 1), delay (nfir + 1,))`` for the audiogram(s); see ``nalr_fir``."""
        return nalr_fir(audiogram, cfs=cfs, nfir=self.nfir, sample_rate=self.sample_rate)

    def apply(self, fir: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
        """``(..., T + nfir)`` the full convolution of ``signal (..., T)`` with ``fir (..., nfir + 1)``."""
        return apply_nalr(fir, signal)


def _check_nfir(nfir: int) -> None:
    if isinstance(nfir, bool) or not isinstance(nfir, int) or nfir < 1:
        raise ValueError(f"nfir must be a positive integer (filter order), got {nfir!r}")


def _nalr_levels(
    audiogram: Audiogram | Sequence[Audiogram] | torch.Tensor,
    cfs: Vector | None,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> torch.Tensor:
    """``(..., 6)`` thresholds in dB HL at NALR_FREQUENCIES."""
    if isinstance(audiogram, torch.Tensor):
        if cfs is None:
            raise ValueError("cfs (the audiogram frequencies in Hz) is required with a tensor of levels")
        levels = audiogram.to(dtype=dtype, device=device if device is not None else audiogram.device)
        return interpolate_levels(levels, cfs, NALR_FREQUENCIES)
    if cfs is not None:
        raise ValueError("cfs must be None for Audiogram inputs: they carry their own frequencies")
    single = isinstance(audiogram, Audiogram)
    audiograms = [audiogram] if isinstance(audiogram, Audiogram) else list(audiogram)
    if not audiograms or not all(isinstance(a, Audiogram) for a in audiograms):
        raise TypeError("audiogram must be an Audiogram, a non-empty sequence of them, or a tensor")
    # Each may have its own frequencies: resample each exactly as pyclarity does (np.interp).
    stacked = np.stack([a.resample(NALR_FREQUENCIES).levels for a in audiograms])
    levels_t = torch.as_tensor(stacked, dtype=dtype, device=device)
    return levels_t[0] if single else levels_t


def _nalr_gains_db(levels: torch.Tensor) -> torch.Tensor:
    """``(..., 6)`` NAL-R insertion gains in dB from ``(..., 6)`` thresholds at NALR_FREQUENCIES."""
    bias = torch.tensor(NALR_BIAS_DB, dtype=levels.dtype, device=levels.device)
    # Summed loss at 500 Hz, 1 kHz and 2 kHz (same order of additions as pyclarity).
    critical_loss = levels[..., 1] + levels[..., 2] + levels[..., 3]
    x_ave = torch.where(critical_loss <= 180, 0.05 * critical_loss, 9.0 + 0.116 * (critical_loss - 180))
    return torch.clamp(x_ave[..., None] + 0.31 * levels + bias, min=0)


def _gain_at_fir_grid(gain_db: torch.Tensor, nfir: int, fmax: float) -> torch.Tensor:
    """``(..., nfir + 1)`` linear gains at ``fmax * k / nfir``, k = 0..nfir (scipy ``interp1d``, linear)."""
    freq_ext = np.concatenate(([0.0], np.asarray(NALR_FREQUENCIES, dtype=np.float64), [fmax]))
    grid = fmax * (np.linspace(0, nfir, nfir + 1) / nfir)
    # scipy's interp1d: hi = searchsorted(x, x_new) clipped to [1, n - 1], lo = hi - 1.
    hi = np.clip(np.searchsorted(freq_ext, grid), 1, len(freq_ext) - 1)
    lo = hi - 1
    gain_ext = torch.cat((gain_db[..., :1], gain_db, gain_db[..., -1:]), dim=-1)
    device, dtype = gain_db.device, gain_db.dtype
    lo_t, hi_t = torch.as_tensor(lo, device=device), torch.as_tensor(hi, device=device)
    y_lo, y_hi = gain_ext[..., lo_t], gain_ext[..., hi_t]
    dx = torch.as_tensor(freq_ext[hi] - freq_ext[lo], dtype=dtype, device=device)
    offset = torch.as_tensor(grid - freq_ext[lo], dtype=dtype, device=device)
    gain_db_grid = (y_hi - y_lo) / dx * offset + y_lo
    return torch.pow(10.0, gain_db_grid / 20.0)


def _fir2(gains: torch.Tensor, nfir: int) -> torch.Tensor:
    """``(..., nfir + 1)`` taps from ``(..., nfir + 1)`` gains at ``k / nfir`` x Nyquist (pyclarity ``fir2``).

    MATLAB's fir2 frequency-sampling design with its default Hamming window, as pyclarity implements it.
    """
    n_taps = nfir + 1
    n_grid = 2 ** math.ceil(math.log(n_taps) / math.log(2.0)) if n_taps >= 1024 else 512
    bins = n_grid + 1
    freqs = np.linspace(0, nfir, nfir + 1) / nfir
    # Piecewise-linear magnitude on the grid: pyclarity fills H[nb..ne] for each breakpoint segment i with
    # inc * g[i+1] + (1 - inc) * g[i]; record, for every grid bin, its segment and weight.
    segment = np.zeros(bins, dtype=np.int64)
    weight = np.zeros(bins, dtype=np.float64)
    nb = 0
    for i in range(nfir):
        ne = int(np.fix(freqs[i + 1] * bins)) - 1
        j = np.arange(nb, ne + 1)
        segment[nb : ne + 1] = i
        weight[nb : ne + 1] = 0.0 if nb == ne else (j - nb) / (ne - nb)
        nb = ne + 1
    # Bin 0 is g[0] (segment 0, weight 0) unless a segment started there, which gives the same value.
    device, dtype = gains.device, gains.dtype
    seg_t = torch.as_tensor(segment, device=device)
    inc = torch.as_tensor(weight, dtype=dtype, device=device)
    magnitude = inc * gains[..., seg_t + 1] + (1 - inc) * gains[..., seg_t]
    # Linear phase: a delay of (n_taps - 1) / 2 samples.
    dt = 0.5 * (n_taps - 1)
    phase = np.exp(-dt * 1j * math.pi * np.arange(0, bins) / (bins - 1))
    # numpy multiplies the real magnitude by the complex phase as (h * cos, h * sin): the same products.
    cos = torch.as_tensor(phase.real.copy(), dtype=dtype, device=device)
    sin = torch.as_tensor(phase.imag.copy(), dtype=dtype, device=device)
    spectrum = torch.complex(magnitude * cos, magnitude * sin)
    # pyclarity mirrors the spectrum to 2 * n_grid bins and keeps the real part of the inverse FFT:
    # that is the inverse real FFT of the half spectrum.
    impulse: torch.Tensor = torch.fft.irfft(spectrum, n=2 * n_grid)
    window = torch.hamming_window(n_taps, periodic=False, dtype=dtype, device=device)
    return impulse[..., :n_taps] * window
