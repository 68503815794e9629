"""Listening and viewing material for restoration runs: excerpts as audio files and spectrogram panels.

People judge restorations by ear and eye. For a few test tracks this writes, under
``<run>/excerpts/<track>/``: ``clean.wav``, ``input.wav`` (the degraded audio, e.g. the MP3 decode),
``restored_<k>.wav`` for each restoration, ``spectrograms.png`` with all of them side by side on one
colour scale (up to the Nyquist frequency of the track's rate: the target rate of hi-res pairs) and
``excerpt.json`` (where the excerpt starts, its rate, format and gain). Every file is written atomically.

The audio files are 24-bit PCM at the track's rate. A restoration may exceed full scale; rather than clip,
every file of the excerpt is scaled by one gain that brings the loudest sample to -0.1 dBFS (so the files
stay comparable), logged and recorded as ``gain_db`` (0 when no file exceeds full scale).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musicbench.audio.io import pcm_safe_gain, write_audio
from musicbench.evaluation.systems import MODEL, sample_names
from musicbench.utils.files import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

SUBTYPE = "PCM_24"


def restorations(model: Any, degraded: torch.Tensor, name: str) -> list[torch.Tensor]:
    """``[(C, T), ...]`` restorations of one degraded ``(C, T)`` excerpt: the ``K`` seeded samples of a
    stochastic model, else its one estimate (``model.estimate_systems``)."""
    with torch.inference_mode():
        systems = model.estimate_systems(degraded, name)
        return [systems[k][0].float().cpu() for k in sample_names(systems) or [MODEL]]


def spectrogram_panel(
    path: str | Path,
    signals: Sequence[tuple[str, torch.Tensor]],
    sample_rate: int,
    n_fft: int = 2048,
    range_db: float = 90.0,
) -> Path:
    """Write a PNG with one log-magnitude spectrogram (dB, channel mean) per ``(title, (C, T))`` signal,
    stacked vertically on a shared colour scale from the loudest bin down ``range_db`` dB, frequencies up
    to ``sample_rate / 2`` Hz."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    length = min(x.shape[-1] for _, x in signals)
    while n_fft > 16 and n_fft // 2 >= length:  # a very short excerpt: a shorter window, not a crash
        n_fft //= 2
    window = torch.hann_window(n_fft)
    specs = []
    for _, x in signals:
        spec = torch.stft(x.float(), n_fft, n_fft // 4, window=window, return_complex=True).abs().mean(0)
        specs.append(20 * torch.log10(spec + 1e-8))
    top = max(float(s.max()) for s in specs)
    duration = signals[0][1].shape[-1] / sample_rate
    fig, axes = plt.subplots(len(signals), 1, figsize=(10, 2.2 * len(signals)), sharex=True, squeeze=False)
    for ax, (title, _), spec in zip(axes[:, 0], signals, specs, strict=True):
        im = ax.imshow(
            spec.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=top - range_db, vmax=top,
            extent=(0, duration, 0, sample_rate / 2000),
        )  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("kHz")
    axes[-1, 0].set_xlabel("s")
    fig.colorbar(im, ax=axes[:, 0].tolist(), label="dB")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return path


def save_excerpts(
    model: Any,
    tracks: Sequence[Any],
    out_dir: str | Path,
    num_tracks: int = 3,
    seconds: float = 6.0,
    range_db: float = 90.0,
) -> list[Path]:
    """Write excerpts of the first ``num_tracks`` tracks (``track.load() -> (degraded (C, T), clean (1, C, T))``)
    to ``out_dir/excerpts/<track>/``: ``seconds`` from the middle of each track, spectrograms with a colour
    scale of ``range_db`` dB. Returns the folders."""
    folders = []
    for track in list(tracks)[:num_tracks]:
        degraded, clean = track.load()
        clean = clean[0]
        sr = int(track.sample_rate)
        n = min(int(seconds * sr), degraded.shape[-1])
        start = max(0, (degraded.shape[-1] - n) // 2)
        degraded, clean = degraded[..., start : start + n], clean[..., start : start + n]
        outs = restorations(model, degraded, track.name)
        folder = Path(out_dir) / "excerpts" / track.name
        named = [("clean", clean), ("input", degraded)] + [(f"restored_{k}", o) for k, o in enumerate(outs)]
        gain = pcm_safe_gain([audio for _, audio in named])
        if gain != 1.0:
            log.warning(
                "excerpt of %s exceeds full scale: all its files are scaled by %.2f dB for %s (never clipped)",
                track.name,
                20 * np.log10(gain),
                SUBTYPE,
            )
        for label, audio in named:
            write_audio(folder / f"{label}.wav", np.asarray(audio) * gain, sr, subtype=SUBTYPE)
        n_fft = 2048 * max(1, round(sr / 44100))  # the same frequency resolution at hi-res rates
        spectrogram_panel(folder / "spectrograms.png", named, sr, n_fft, range_db)
        info = {
            "track": track.name,
            "start_s": start / sr,
            "seconds": n / sr,
            "sample_rate": sr,
            "subtype": SUBTYPE,
            "gain_db": 20 * float(np.log10(gain)),
            "files": [f"{label}.wav" for label, _ in named],
        }
        write_json_atomic(folder / "excerpt.json", info)
        folders.append(folder)
        log.info("excerpts of %s written to %s", track.name, folder)
    return folders
