"""Audio file I/O through soundfile, with errors that name the file and atomic writes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from musicbench.audio.finite import first_nonfinite, nonfinite_message
from musicbench.errors import UserError
from musicbench.utils.files import atomic_path


class AudioFileError(UserError, RuntimeError):
    """An audio file is missing, unreadable or not what was expected; the message names the file."""


def audio_info(path: str | os.PathLike[str]) -> sf._SoundFileInfo:
    """Return soundfile's info (``samplerate`` in Hz, ``frames``, ``channels``) or raise AudioFileError."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"audio file not found: {path}")
    try:
        return sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for corrupt files
        raise AudioFileError(
            f"cannot read audio file {path}: {exc}. Is it a complete, valid audio file?"
        ) from exc


def read_audio(
    path: str | os.PathLike[str], frame_offset: int = 0, num_frames: int = -1
) -> tuple[torch.Tensor, int]:
    """Read an audio file as float32.

    Args:
        path: any format libsndfile reads (wav, flac, ogg, mp3).
        frame_offset: first frame to read (samples).
        num_frames: number of frames to read (samples); -1 reads to the end.

    Returns:
        ``(audio, sample_rate)`` with audio of shape ``(channels, samples)`` and the rate in Hz.

    Raises:
        AudioFileError: the file is missing or unreadable, or (float formats) it holds NaN/±inf; the
            message names the file and, for a non-finite value, its channel and sample position.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"audio file not found: {path}")
    try:
        data, sr = sf.read(str(path), start=frame_offset, frames=num_frames, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioFileError(
            f"cannot read audio file {path}: {exc}. Is it a complete, valid audio file?"
        ) from exc
    audio = torch.from_numpy(np.ascontiguousarray(data.T))
    bad = first_nonfinite(audio)
    if bad is not None:
        raise AudioFileError(
            f"audio file {path} contains {nonfinite_message(audio, bad, offset=frame_offset)}; "
            "replace the file (only float formats can hold NaN/inf)"
        )
    return audio, int(sr)


def pcm_safe_gain(signals: Sequence[torch.Tensor | np.ndarray], headroom_dbfs: float = -0.1) -> float:
    """The linear gain for writing ``signals`` (any shapes) as fixed-point PCM without clipping: 1 when
    every sample is within full scale, else the one gain that puts the loudest sample of all of them at
    ``headroom_dbfs`` dB re full scale (so signals scaled together stay comparable)."""
    peak = max(float(np.abs(np.asarray(s)).max()) if np.asarray(s).size else 0.0 for s in signals)
    return 1.0 if peak < 1.0 else 10 ** (headroom_dbfs / 20) / peak


def write_audio(
    path: str | os.PathLike[str],
    audio: torch.Tensor | np.ndarray,
    sample_rate: int,
    subtype: str | None = None,
) -> Path:
    """Write ``audio`` of shape ``(channels, samples)`` atomically.

    Integer PCM subtypes (the default for wav is PCM_16) would clip values outside [-1, 1]; instead of
    clipping silently this raises ``ValueError`` and asks for ``subtype="FLOAT"`` or a lower gain.
    """
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio)
    if audio.ndim != 2:
        raise ValueError(f"write_audio expects (channels, samples), got shape {audio.shape} for {path}")
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"refusing to write {path}: the audio contains NaN or Inf")
    path = Path(path)
    fmt_subtype = subtype or sf.default_subtype(path.suffix.lstrip(".").upper() or "WAV")
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if fmt_subtype and fmt_subtype.startswith("PCM") and peak > 1.0:
        raise ValueError(
            f"refusing to write {path}: peak {peak:.3f} > 1.0 would clip in {fmt_subtype}; "
            "lower the gain or write subtype='FLOAT'"
        )
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio.T, int(sample_rate), subtype=fmt_subtype)
    return path
