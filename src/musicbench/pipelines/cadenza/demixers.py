"""Demixers for the Cadenza recipes: a song's mixture -> its stems, each ``(samples, channels)`` at the
data's sample rate.

Any of them is chosen by ``_target_``. ``OracleDemixer`` returns the true stems (the upper bound);
``MixtureDemixer`` returns the mixture as every stem (no separation: the lower bound); ``CheckpointDemixer``
runs a musicbench separator trained with ``mb-train``.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
import torchaudio

from musicbench.checkpoints import find_checkpoint, load_checkpoint
from musicbench.errors import ConfigError
from musicbench.utils.files import sha256_file


class StemSource(Protocol):
    """What a demixer needs from a dataset: ``stem(song, name) -> (samples, channels)`` float audio."""

    sample_rate: int

    def stem(self, song: Any, name: str) -> np.ndarray: ...


class Demixer(Protocol):
    """``demixer(data, song, stems) -> {stem: (samples, channels)}``; ``id`` identifies it in result digests."""

    id: str

    def __call__(self, data: StemSource, song: Any, stems: tuple[str, ...]) -> dict[str, np.ndarray]: ...


class OracleDemixer:
    """The true stems: the best any demixer can do."""

    id = "oracle"

    def __call__(self, data: StemSource, song: Any, stems: tuple[str, ...]) -> dict[str, np.ndarray]:
        return {s: data.stem(song, s) for s in stems}


class MixtureDemixer:
    """The mixture, times ``gain``, as every stem: no separation."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = float(gain)
        self.id = f"mixture*{self.gain!r}"

    def __call__(self, data: StemSource, song: Any, stems: tuple[str, ...]) -> dict[str, np.ndarray]:
        mixture = data.stem(song, "mixture") * np.float32(self.gain)
        return {s: mixture for s in stems}


class CheckpointDemixer:
    """A separator trained with ``mb-train`` (a checkpoint file or a run folder: its best checkpoint).

    Its sources are matched to the recipe's stems by name; the mixture is resampled to the model's rate
    and the estimates back. ``device``: ``None`` picks CUDA when available.
    """

    def __init__(self, ckpt_path: str, device: str | None = None) -> None:
        import hydra

        self.path = find_checkpoint(ckpt_path)
        state, stored = load_checkpoint(self.path)
        self.model = hydra.utils.instantiate(stored.model)
        self.model.load_state_dict(state["state_dict"])
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device).eval()
        self.sources = list(stored.data.sources)
        self.sample_rate = int(stored.data.sample_rate)
        self.id = sha256_file(self.path)

    def __call__(self, data: StemSource, song: Any, stems: tuple[str, ...]) -> dict[str, np.ndarray]:
        missing = [s for s in stems if s not in self.sources]
        if missing:
            raise ConfigError(
                f"the separator {self.path} estimates {self.sources}, not {missing}: use a model trained on "
                "this dataset's stems"
            )
        mixture = torch.from_numpy(np.ascontiguousarray(data.stem(song, "mixture").T)).float()
        mixture_length = mixture.shape[-1]
        if data.sample_rate != self.sample_rate:
            mixture = torchaudio.functional.resample(mixture, data.sample_rate, self.sample_rate)
        with torch.inference_mode():
            estimates = self.model.separate(mixture[None].to(self.device))[0].float().cpu()
        if data.sample_rate != self.sample_rate:
            estimates = torchaudio.functional.resample(estimates, self.sample_rate, data.sample_rate)
            length = mixture_length
            estimates = torch.nn.functional.pad(estimates, (0, max(0, length - estimates.shape[-1])))[
                ..., :length
            ]
        return {s: estimates[self.sources.index(s)].T.numpy() for s in stems}
