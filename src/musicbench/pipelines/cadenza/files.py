"""Cadenza's enhanced-signal files, written and read exactly as pyclarity's recipes do.

A stem is resampled with soxr (``HQ``), peak-normalised with the peak written as text in a sibling
``.txt``, converted to 16 bit by ``x * 32768`` clipped to [-32768, 32767] and truncated toward zero, and
stored as FLAC; a remix is resampled, soft-clipped with ``tanh`` and stored the same way without a scale.
Reading divides by 32768 and multiplies by the scale, in float32. Writes are atomic.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from musicbench.audio.io import AudioFileError
from musicbench.utils.files import atomic_path, write_text_atomic

log = logging.getLogger(__name__)


def resample(signal: np.ndarray, sample_rate: int, new_sample_rate: int) -> np.ndarray:
    """pyclarity's ``resample`` (soxr, ``HQ``) along the first axis of ``(samples[, channels])``."""
    if sample_rate == new_sample_rate:
        return signal
    return soxr.resample(signal, sample_rate, new_sample_rate, quality="HQ")


def to_16bit(signal: np.ndarray) -> np.ndarray:
    """``signal`` in [-1, 1] as int16: ``x * 32768``, clipped, truncated toward zero (pyclarity's ``to_16bit``)."""
    return np.clip(signal * 32768.0, -32768.0, 32767.0).astype(np.int16)


def _write_flac(path: Path, pcm: np.ndarray, sample_rate: int) -> None:
    with atomic_path(path) as tmp:
        sf.write(str(tmp), pcm, int(sample_rate), format="FLAC", subtype="PCM_16")


def write_stem(signal: np.ndarray, path: Path, sample_rate: int, output_sample_rate: int) -> float:
    """Write a processed stem ``(samples,)`` at ``sample_rate`` Hz as peak-scaled 16-bit FLAC at
    ``output_sample_rate`` Hz, with the peak in ``path.with_suffix('.txt')``; returns the peak.

    A silent stem is written as zeros with a peak of 0 (pyclarity would divide by zero).
    """
    signal = resample(np.asarray(signal), sample_rate, output_sample_rate)
    if not np.all(np.isfinite(signal)):
        raise ValueError(f"refusing to write {path}: the processed stem contains NaN or Inf")
    peak = np.max(np.abs(signal))
    scaled = signal / peak if peak > 0 else signal
    write_text_atomic(path.with_suffix(".txt"), f"{peak}")
    _write_flac(path, to_16bit(scaled), output_sample_rate)
    return float(peak)


def write_remix(
    signal: np.ndarray, path: Path, sample_rate: int, output_sample_rate: int, soft_clip: bool = True
) -> int:
    """Write a remix ``(samples, 2)`` as 16-bit FLAC at ``output_sample_rate`` Hz after an optional ``tanh``
    soft clip; samples beyond ±1 are clipped and counted (logged); returns that count."""
    signal = resample(np.asarray(signal), sample_rate, output_sample_rate)
    if soft_clip:
        signal = np.tanh(signal)
    clipped = int(np.sum(np.abs(signal) > 1.0))
    if clipped:
        log.warning("writing %s: %d samples clipped", path, clipped)
    _write_flac(path, to_16bit(np.clip(signal, -1.0, 1.0)), output_sample_rate)
    return clipped


def read_stem(path: Path) -> tuple[np.ndarray, int]:
    """``(samples[, channels]) float32, sample rate (Hz)`` of a stem FLAC, rescaled by its ``.txt`` peak when
    there is one (pyclarity's ``read_flac_signal``)."""
    if not path.is_file():
        raise AudioFileError(f"enhanced signal not found: {path}. Run the enhance stage first")
    try:
        pcm, sample_rate = sf.read(str(path), dtype="int16")
    except Exception as exc:
        raise AudioFileError(f"cannot read {path}: {exc}") from exc
    signal = (pcm / 32768.0).astype(np.float32)
    scale = path.with_suffix(".txt")
    if scale.exists():
        try:
            signal *= float(scale.read_text(encoding="utf-8"))
        except ValueError:
            raise AudioFileError(f"{scale}: expected the stem's peak as a number") from None
    return signal, int(sample_rate)
