"""Listening and viewing material for restoration runs: excerpts as audio files and spectrogram panels.

People judge restorations by ear and eye. For a few test tracks this writes, under
``<run>/excerpts/<track>/``: ``clean.wav``, ``input.wav`` (the degraded audio, e.g. the MP3 decode),
``restored_<k>.wav`` for each restoration and ``spectrograms.png`` with all of them side by side on one
colour scale. Every file is written atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musicbench.audio.io import write_audio
from musicbench.evaluation.systems import MODEL, sample_names
from musicbench.utils.files import atomic_path

log = logging.getLogger(__name__)


def restorations(model: Any, degraded: torch.Tensor, name: str) -> list[torch.Tensor]:
    """``[(C, T), ...]`` restorations of one degraded ``(C, T)`` excerpt: the ``K`` seeded samples of a
    stochastic model, else its one estimate (``model.estimate_systems``)."""
    with torch.inference_mode():
        systems = model.estimate_systems(degraded, name)
        return [systems[k][0].float().cpu() for k in sample_names(systems) or [MODEL]]


def spectrogram_panel(
    path: str | Path, signals: Sequence[tuple[str, torch.Tensor]], sample_rate: int, n_fft: int = 2048
) -> Path:
    """Write a PNG with one log-magnitude spectrogram (dB, channel mean) per ``(title, (C, T))`` signal,
    stacked vertically on a shared colour scale (the loudest bin at 0 dB, 90 dB range)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
            spec.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=top - 90, vmax=top,
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
    model: Any, tracks: Sequence[Any], out_dir: str | Path, num_tracks: int = 3, seconds: float = 6.0
) -> list[Path]:
    """Write excerpts of the first ``num_tracks`` tracks (``track.load() -> (degraded (C, T), clean (1, C, T))``)
    to ``out_dir/excerpts/<track>/``: ``seconds`` from the middle of each track. Returns the folders."""
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
        for label, audio in named:
            # FLOAT: restorations may exceed full scale; never clip silently.
            write_audio(folder / f"{label}.wav", np.asarray(audio), sr, subtype="FLOAT")
        spectrogram_panel(folder / "spectrograms.png", named, sr)
        folders.append(folder)
        log.info("excerpts of %s written to %s", track.name, folder)
    return folders
