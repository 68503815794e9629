"""CAD1 Task 1 (headphones), as pyclarity's official baseline recipe does it.

Enhance, per (system, song, listener): demix the mixture into vocals/drums/bass/other × 2 ears, apply
each ear's NAL-R (``nfir=220`` at 44.1 kHz, full convolution: the filter delay is kept, as in the official
baseline; ``trim_delay=True`` removes it), optionally the baseline compressor, and write the 8 stems (24 kHz,
16-bit, peak-scaled) and their remix (32 kHz, ``tanh`` soft clip) under
``<out>/<system>/enhanced_signals/<LID>/<Song>/``.

Evaluate, per (system, song, listener): 8 HAAQI scores in pyclarity's order (drums, bass, other, vocals ×
left, right), each comparing the clean stem channel resampled 44.1 -> 24 kHz with the enhanced 24 kHz stem,
``equalisation=1``, ``level1 = 65 - 20 log10(rms(the 44.1 kHz reference channel))``; the score is their
mean. The internal noise is seeded per song with ``int(md5(song), 16) % 10**8``: ``noise="pyclarity"``
draws it from NumPy's legacy RNG in pyclarity's order (same scores as pyclarity's evaluate), the default
``"counter"`` uses musicbench's counter-based noise (item ``i`` of the 8 uses seed + ``i``; independent of
device and batch). Results go to ``<out>/results/`` one file per item, written atomically as each finishes;
``merge`` writes ``<out>/<system>/scores.csv`` (pyclarity's columns) and ``<out>/summary.json``.

On the test split the stems are cut to each song's ``objective_evaluation`` segment and the remix to its
``subjective_evaluation`` segment (``use_segments``), references likewise, and ``package`` zips the
enhanced signals in the layout entrants upload.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musicbench.data.cadenza import EARS, EVAL_ORDER, Cad1Task1, Song
from musicbench.errors import ConfigError
from musicbench.hearing.audiogram import Listener
from musicbench.hearing.compressor import Compressor
from musicbench.hearing.nalr import apply_nalr, nalr_fir
from musicbench.hearing.standard_audiograms import severity_group
from musicbench.metrics.haaqi import haaqi
from musicbench.pipelines.cadenza.base import Recipe
from musicbench.pipelines.cadenza.demixers import Demixer
from musicbench.pipelines.cadenza.files import read_stem, resample, write_remix, write_stem
from musicbench.pipelines.cadenza.report import write_scores_csv
from musicbench.utils.files import atomic_path, sha256_file
from musicbench.utils.hashcache import file_hashes
from musicbench.utils.provenance import digest_of

log = logging.getLogger(__name__)
NOISE_MODES = ("counter", "pyclarity")


def song_seed(song: str) -> int:
    """pyclarity's per-song seed: ``int(md5(song), 16) % 10**8``."""
    return int(hashlib.md5(song.encode("utf-8")).hexdigest(), 16) % (10**8)


class NumpyNoise:
    """HAAQI noise drawn from one NumPy legacy RNG seeded with ``seed``, call after call: the draws
    pyclarity's HAAQI takes from ``np.random`` after ``np.random.seed(seed)``, including those it throws
    away (``discard``), so a batch of calls sees pyclarity's stream in pyclarity's order."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.RandomState(seed)

    def __call__(self, n: int) -> torch.Tensor:
        return torch.from_numpy(
            np.stack([self.rng.standard_normal((32, n)), self.rng.standard_normal((32, n))])
        )

    def discard(self, shape: tuple[int, ...]) -> None:
        self.rng.standard_normal(shape)


@dataclass(frozen=True)
class Item:
    """One unit of work: a system's enhancement of a song for a listener."""

    system: str
    song: Song
    listener: Listener

    @property
    def name(self) -> str:
        return f"{self.system}/{self.song.name}/{self.listener.id}"


class Cad1Task1Pipeline(Recipe):
    """The CAD1 Task 1 recipe (see the module docstring).

    Args:
        data: the songs and listeners (:class:`~musicbench.data.cadenza.Cad1Task1`).
        demixers: ``{system: demixer}`` (``pipelines.cadenza.demixers``); each is a system of the results.
        nfir: NAL-R filter order (taps - 1).
        trim_delay: drop NAL-R's ``nfir / 2``-sample delay (the official baseline keeps it).
        compressor: the baseline compressor applied after NAL-R, or ``None`` (the official baseline's
            compressor is configured but off).
        soft_clip: ``tanh`` on the remix before writing it.
        stem_sample_rate, remix_sample_rate: of the written stems and remix, in Hz.
        use_segments: cut stems, remix and references to the songs' segments; ``None``: on the test split.
        noise: ``"counter"`` (default) or ``"pyclarity"`` (see the module docstring).
        backend: HAAQI's backend (``auto``, ``numba``, ``torch``).
        progress: progress bars with ETA.
    """

    def __init__(
        self,
        data: Cad1Task1,
        demixers: Mapping[str, Demixer],
        nfir: int = 220,
        trim_delay: bool = False,
        compressor: Compressor | None = None,
        soft_clip: bool = True,
        stem_sample_rate: int = 24000,
        remix_sample_rate: int = 32000,
        use_segments: bool | None = None,
        noise: str = "counter",
        backend: str = "auto",
        progress: bool = True,
    ) -> None:
        super().__init__(demixers, progress)
        if noise not in NOISE_MODES:
            raise ConfigError(f"pipeline.noise={noise!r}: expected one of {', '.join(NOISE_MODES)}")
        self.data = data
        self.nfir = int(nfir)
        self.trim_delay = bool(trim_delay)
        self.compressor = compressor
        self.soft_clip = bool(soft_clip)
        self.stem_sample_rate = int(stem_sample_rate)
        self.remix_sample_rate = int(remix_sample_rate)
        self.use_segments = data.split == "test" if use_segments is None else bool(use_segments)
        self.noise = noise
        self.backend = backend

    # --- work items ------------------------------------------------------------------------------------
    recipe = "cad1_task1"
    unit = "song-listener pairs"

    def all_items(self) -> list[Item]:
        """Every (system, song, listener), system-major then pyclarity's song-major order."""
        return [Item(s, song, lis) for s in self.demixers for song, lis in self.data.pairs()]

    def folder(self, out_dir: Path, item: Item) -> Path:
        """The folder of an item's enhanced signals."""
        return out_dir / item.system / "enhanced_signals" / item.listener.id / item.song.name

    def stem_path(self, out_dir: Path, item: Item, ear: str, stem: str) -> Path:
        lid, song = item.listener.id, item.song.name
        return self.folder(out_dir, item) / f"{lid}_{song}_{ear}_{stem}.flac"

    def remix_path(self, out_dir: Path, item: Item) -> Path:
        return self.folder(out_dir, item) / f"{item.listener.id}_{item.song.name}_remix.flac"

    def _segment(self, song: Song, kind: str, sample_rate: int) -> slice:
        if not self.use_segments:
            return slice(None)
        start, end = song.segments.get(kind) or song.segments["objective_evaluation"]
        return slice(int(start * sample_rate), int(end * sample_rate))

    def _song_fingerprints(self) -> dict[str, str]:
        """``{song: digest of the sha256 of its audio files}`` (cached by path, size and mtime)."""
        hashes = file_hashes()
        out = {
            song.name: digest_of("song", [(p.name, hashes.sha256(p)) for p in self.data.files(song)])
            for song in self.data.songs
        }
        hashes.save()
        return out

    # --- enhance ---------------------------------------------------------------------------------------
    def enhance_settings(self) -> dict[str, Any]:
        compressor = repr(self.compressor) if self.compressor is not None else None
        return {
            "recipe": "cad1_task1/enhance",
            "nfir": self.nfir,
            "trim_delay": self.trim_delay,
            "compressor": compressor,
            "soft_clip": self.soft_clip,
            "rates": [self.stem_sample_rate, self.remix_sample_rate],
            "segments": self.use_segments,
        }

    def enhance_digests(self, items: Sequence[Item]) -> dict[str, str]:
        songs = self._song_fingerprints()
        settings = self.enhance_settings()
        return {
            i.name: digest_of(settings, self.demixers[i.system].id, songs[i.song.name], i.listener.to_dict())
            for i in items
        }

    def enhance_item(self, out_dir: Path, item: Item, digest: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        rate = self.data.sample_rate
        stems = self.demix(item.system, self.data, item.song, item.song.name, self.data.stems)
        names = list(stems)
        # (stems, ears, samples) float64, as pyclarity's np.convolve promotes the float32 stems.
        audio = torch.from_numpy(np.stack([np.asarray(stems[s], dtype=np.float64).T for s in names]))
        fir, _ = nalr_fir(
            [item.listener.audiogram_left, item.listener.audiogram_right], nfir=self.nfir, sample_rate=rate
        )
        processed = apply_nalr(fir[None], audio, compensate_delay=self.trim_delay)
        if self.compressor is not None:
            processed, _, _ = self.compressor.process(processed)
        processed_np = processed.numpy()
        files: dict[str, str] = {}
        cut = self._segment(item.song, "objective_evaluation", rate)
        for k, stem in enumerate(names):
            for e, ear in enumerate(EARS):
                path = self.stem_path(out_dir, item, ear, stem)
                write_stem(processed_np[k, e][cut], path, rate, self.stem_sample_rate)
                files[path.relative_to(out_dir).as_posix()] = sha256_file(path)
        remix = processed_np.sum(axis=0).T  # (samples, 2): the stems summed per ear
        remix_path = self.remix_path(out_dir, item)
        clipped = write_remix(
            remix[self._segment(item.song, "subjective_evaluation", rate)],
            remix_path,
            rate,
            self.remix_sample_rate,
            self.soft_clip,
        )
        files[remix_path.relative_to(out_dir).as_posix()] = sha256_file(remix_path)
        return {
            "item": item.name,
            "system": item.system,
            "song": item.song.name,
            "listener": item.listener.id,
            "digest": digest,
            "files": files,
            "remix_clipped_samples": clipped,
            "wall_time_s": round(time.perf_counter() - t0, 3),
        }

    # --- evaluate --------------------------------------------------------------------------------------
    def evaluate_settings(self) -> dict[str, Any]:
        return {
            "recipe": "cad1_task1/evaluate",
            "noise": self.noise,
            "rate": self.stem_sample_rate,
            "segments": self.use_segments,
        }

    def _enhanced_files(self, out_dir: Path, item: Item) -> list[Path]:
        return [self.stem_path(out_dir, item, ear, stem) for stem in EVAL_ORDER for ear in EARS]

    def evaluate_digests(self, out_dir: Path, items: Sequence[Item]) -> dict[str, str]:
        songs = self._song_fingerprints()
        settings = self.evaluate_settings()
        digests = {}
        for item in items:
            files = self._enhanced_files(out_dir, item)
            hashes = [sha256_file(p) if p.is_file() else None for p in files]
            peaks = [
                p.with_suffix(".txt").read_text() if p.with_suffix(".txt").is_file() else None for p in files
            ]
            digests[item.name] = digest_of(
                settings, songs[item.song.name], item.listener.to_dict(), hashes, peaks
            )
        return digests

    def evaluate_item(self, out_dir: Path, item: Item, digest: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        rate = self.data.sample_rate
        cut = self._segment(item.song, "objective_evaluation", rate)
        references, processed, levels, audiograms, names, notes = [], [], [], [], [], []
        for stem in EVAL_ORDER:
            reference = self.data.stem(item.song, stem)[cut]
            for e, ear in enumerate(EARS):
                channel = reference[:, e]
                # float32 arithmetic, as pyclarity's compute_rms and level1 on the float32 reference.
                rms = np.sqrt(np.mean(np.square(channel)))
                signal, sample_rate = read_stem(self.stem_path(out_dir, item, ear, stem))
                if sample_rate != self.stem_sample_rate:
                    raise ConfigError(
                        f"{self.stem_path(out_dir, item, ear, stem)}: {sample_rate} Hz, expected "
                        f"pipeline.stem_sample_rate={self.stem_sample_rate}"
                    )
                names.append(f"{ear}_{stem}")
                if not rms > 0:
                    notes.append(
                        f"{ear}_{stem}=nan: the reference channel is digitally silent (level1 undefined)"
                    )
                    continue
                levels.append(float(65 - 20 * np.log10(rms)))
                references.append(resample(channel, rate, self.stem_sample_rate))
                processed.append(signal)
                audiograms.append(
                    item.listener.audiogram_left if ear == "left" else item.listener.audiogram_right
                )
        seed = song_seed(item.song.name)
        scored = [n for n in names if not any(note.startswith(f"{n}=") for note in notes)]
        values: dict[str, float] = dict.fromkeys(names, math.nan)
        if scored:
            scores = haaqi(
                np.stack(references),
                np.stack(processed),
                self.stem_sample_rate,
                self.stem_sample_rate,
                audiograms,
                equalisation=1,
                level1=levels,
                seed=seed if self.noise == "counter" else None,
                noise=NumpyNoise(seed) if self.noise == "pyclarity" else None,
                backend=self.backend,
                resampling="pyclarity" if self.noise == "pyclarity" else "exact",
            )
            values.update(zip(scored, scores.tolist(), strict=True))
        finite = [v for v in values.values() if math.isfinite(v)]
        return {
            "item": item.name,
            "system": item.system,
            "song": item.song.name,
            "listener": item.listener.id,
            "group": severity_group(item.listener),
            "digest": digest,
            "score": float(np.mean(finite)) if finite else math.nan,
            "scores": values,
            "notes": notes,
            "wall_time_s": round(time.perf_counter() - t0, 3),
        }

    def write_scores(self, results: Sequence[Mapping[str, Any]], path: Path) -> None:
        write_scores_csv(results, path)

    def summary_meta(self) -> dict[str, Any]:
        return {
            "data": str(self.data.root),
            "split": self.data.split,
            "settings": {**self.enhance_settings(), **self.evaluate_settings()},
        }

    # --- submission ------------------------------------------------------------------------------------
    def package(self, out_dir: str | Path, system: str, team_id: str) -> Path:
        """Zip one system's enhanced signals as ``<out>/submission_<team_id>.zip`` with the layout entrants
        upload (``evaluation/<LID>/<Song>/<files>``; pyclarity's ``test.py``); written atomically."""
        out_dir = Path(out_dir)
        if system not in self.demixers:
            raise ConfigError(f"submission.system={system!r}: systems of this run are {list(self.demixers)}")
        items = [i for i in self.items() if i.system == system]
        files = []
        for item in items:
            wanted = [*self._enhanced_files(out_dir, item), self.remix_path(out_dir, item)]
            wanted += [p.with_suffix(".txt") for p in wanted[:-1]]
            missing = [p for p in wanted if not p.is_file()]
            if missing:
                raise ConfigError(
                    f"cannot package {item.name}: {missing[0]} is missing; run the enhance stage"
                )
            files += wanted
        path = out_dir / f"submission_{team_id}.zip"
        root = out_dir / system / "enhanced_signals"
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(files):
                archive.write(file, (Path("evaluation") / file.relative_to(root)).as_posix())
        log.info("submission: %s (%d files, %d song-listener pairs)", path, len(files), len(items))
        return path
