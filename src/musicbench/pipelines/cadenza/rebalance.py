"""Rebalancing music for listeners with hearing loss, CAD2 Task 2 style, on the chorale Cadenza layout.

Per (system, scene, listener): demix the piece's excerpt into its voices, apply the scene's gains (dB),
remix, level-compensate as CAD2 does (``adjust_level``: ``-10 log10(mean(10^(g/10)))`` dB), and process
each ear with the hearing aid (:class:`HearingAid`: NAL-R, a multiband compressor, a band-pass); the
output is written as 32-bit float WAV at ``output_sample_rate``. CAD2 writes 16-bit FLAC and clips; here
the prescribed gain for a severe loss (up to ~40 dB) would clip most samples, so nothing is clipped and
each result records the output's peak. The reference is the clean voices with the same
gains, remixed, level-compensated and processed by the same hearing aid. Scores per ear (both at 24 kHz):
HAAQI with ``equalisation=2`` (the reference already has the hearing aid) and ``level1 = 65 - 20
log10(rms(the un-amplified reference mix's channel))``, SNR and SDR (dB); a scene-listener's value is the
mean of its two ears.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musicbench.audio.io import read_audio, write_audio
from musicbench.data.cadenza_chorales import CadenzaScenes, Scene
from musicbench.hearing.audiogram import Listener
from musicbench.hearing.filters import butter_bandpass_sos, sos_filter
from musicbench.hearing.multiband_compressor import CAD2_CROSSOVER_FREQUENCIES, MultibandCompressor
from musicbench.hearing.nalr import apply_nalr, nalr_fir
from musicbench.hearing.standard_audiograms import severity_group
from musicbench.metrics.haaqi import haaqi
from musicbench.metrics.sdr import global_sdr, snr
from musicbench.pipelines.cadenza.base import Recipe
from musicbench.pipelines.cadenza.cad1 import song_seed
from musicbench.pipelines.cadenza.demixers import Demixer
from musicbench.pipelines.cadenza.files import resample
from musicbench.utils.hashcache import file_hashes
from musicbench.utils.provenance import digest_of

HAAQI_RATE = 24000
METRICS = ("haaqi", "snr", "sdr")


class HearingAid:
    """Per-ear hearing-aid processing: NAL-R (delay removed), a multiband compressor, a band-pass.

    Args:
        sample_rate: of the signals (Hz).
        nfir: NAL-R filter order; ``None`` skips NAL-R.
        compressor: keyword arguments of the multiband compressor's ``set_compressors`` (``attack``,
            ``release`` in ms, ``threshold`` in dB, ``ratio``, ``makeup_gain`` in dB, ``knee_width`` in dB;
            scalars or one value per band) over CAD2's crossovers; ``None`` skips it.
        bandpass: ``(low, high)`` Hz of a Butterworth band-pass (second-order sections); ``None`` skips it.
        bandpass_order: of that band-pass.
    """

    def __init__(
        self,
        sample_rate: int = 44100,
        nfir: int | None = 220,
        compressor: Mapping[str, Any] | None = None,
        bandpass: Sequence[float] | None = (250.0, 18500.0),
        bandpass_order: int = 4,
    ) -> None:
        self.sample_rate = int(sample_rate)
        self.nfir = nfir
        self.compressor = None
        if compressor is not None:
            self.compressor = MultibandCompressor(
                CAD2_CROSSOVER_FREQUENCIES, self.sample_rate, dict(compressor)
            )
        self.sos = (
            butter_bandpass_sos(float(bandpass[0]), float(bandpass[1]), self.sample_rate, bandpass_order)
            if bandpass is not None
            else None
        )
        self.settings = {
            "nfir": nfir,
            "compressor": dict(compressor) if compressor is not None else None,
            "bandpass": list(bandpass) if bandpass is not None else None,
            "bandpass_order": bandpass_order,
        }

    def __call__(self, signal: torch.Tensor, listener: Listener) -> torch.Tensor:
        """``(2, samples)`` float64 (left, right) -> the processed ``(2, samples)``, each ear with its audiogram."""
        return self.limit(self.shape(signal, listener))

    def shape(self, signal: torch.Tensor, listener: Listener) -> torch.Tensor:
        """The listener-specific part, NAL-R and the compressor: ``(2, samples)`` -> ``(2, samples)`` float64."""
        out = signal.double()
        if self.nfir is not None:
            fir, _ = nalr_fir(
                [listener.audiogram_left, listener.audiogram_right],
                nfir=self.nfir,
                sample_rate=self.sample_rate,
            )
            out = apply_nalr(fir, out, compensate_delay=True)
        if self.compressor is not None:
            out = self.compressor(out)
        return out

    def limit(self, signal: torch.Tensor) -> torch.Tensor:
        """The band-pass (if any) of ``(..., samples)``."""
        return sos_filter(self.sos, signal) if self.sos is not None else signal


def adjust_level(signal: np.ndarray, gains_db: Sequence[float]) -> np.ndarray:
    """CAD2's level compensation of a remix whose sources were amplified by ``gains_db``."""
    dbi = np.asarray(gains_db, dtype=np.float64)
    return signal * 10 ** (-10 * np.log10(np.mean(10 ** (dbi / 10))) / 20)


class _Excerpts:
    """The voices and mixture of a piece's excerpt as ``(samples, 2)`` float32 arrays (the demixers' view)."""

    def __init__(self, scenes: CadenzaScenes) -> None:
        self.scenes = scenes
        self.sample_rate = scenes.sample_rate
        self._piece: tuple[str, dict[str, np.ndarray]] | None = None

    def stem(self, piece: str, name: str) -> np.ndarray:
        if self._piece is None or self._piece[0] != piece:
            stems, _ = self.scenes.load_stems(piece)
            mixture, _ = self.scenes.load_mixture(piece)
            audio = dict(zip(self.scenes.instruments, stems.numpy(), strict=True))
            audio["mixture"] = mixture.numpy()
            self._piece = (piece, {k: np.ascontiguousarray(v.T) for k, v in audio.items()})
        return self._piece[1][name]


@dataclass(frozen=True)
class SceneItem:
    """One unit of work: a system's rebalancing of a scene for a listener."""

    system: str
    scene: Scene
    listener: Listener

    @property
    def name(self) -> str:
        return f"{self.system}/{self.scene.id}/{self.listener.id}"


class RebalancePipeline(Recipe):
    """The chorale rebalancing recipe (see the module docstring).

    Args:
        data: the scenes and listeners of a split (:class:`~musicbench.data.cadenza_chorales.CadenzaScenes`).
        demixers: ``{system: demixer}`` (``pipelines.cadenza.demixers``).
        hearing_aid: the per-ear processing applied to the output and to the reference.
        output_sample_rate: of the written output (Hz).
        per_stem: apply the hearing aid's NAL-R and compressor to each voice (after its gain) and band-pass
            the remix, as the Cadenza 2023 entry this recipe's preset ``chorales_seed_entry`` reproduces;
            ``False``: the whole hearing aid on the remix (CAD2's baseline).
        backend: HAAQI's backend. progress: progress bars.
    """

    def __init__(
        self,
        data: CadenzaScenes,
        demixers: Mapping[str, Demixer],
        hearing_aid: HearingAid,
        output_sample_rate: int = 32000,
        per_stem: bool = False,
        backend: str = "auto",
        progress: bool = True,
    ) -> None:
        super().__init__(demixers, progress)
        self.data = data
        self.audio = _Excerpts(data)
        self.hearing_aid = hearing_aid
        self.output_sample_rate = int(output_sample_rate)
        self.per_stem = bool(per_stem)
        self.backend = backend
        self._listeners = data.listeners()

    unit = "scene-listener pairs"

    @property
    def recipe(self) -> str:  # type: ignore[override]
        return "chorales_rebalance" + ("/per_stem" if self.per_stem else "")

    def all_items(self) -> list[SceneItem]:
        """Every (system, scene, listener), system-major then the scenes' order."""
        return [
            SceneItem(system, scene, self._listeners[lid])
            for system in self.demixers
            for scene in self.data.scenes
            for lid in scene.listener_ids
        ]

    def output_path(self, out_dir: Path, item: SceneItem) -> Path:
        return out_dir / item.system / "enhanced_signals" / f"{item.scene.id}_{item.listener.id}_remix.wav"

    def _piece_fingerprints(self) -> dict[str, str]:
        hashes = file_hashes()
        out = {}
        for piece in self.data.pieces:
            folder = self.data.root / "audio" / self.data.split / piece
            out[piece] = digest_of(
                "piece", [(p.name, hashes.sha256(p)) for p in sorted(folder.glob("*.wav"))]
            )
        hashes.save()
        return out

    def _gains(self, scene: Scene) -> list[float]:
        return [scene.gains[i] for i in self.data.instruments]

    def _rebalance(self, stems: Mapping[str, np.ndarray], scene: Scene) -> np.ndarray:
        """``(samples, 2)``: the voices times the scene's gains, summed and level-compensated."""
        mix = sum(
            np.asarray(stems[i], dtype=np.float64) * 10 ** (scene.gains[i] / 20)
            for i in self.data.instruments
        )
        return adjust_level(np.asarray(mix), self._gains(scene))

    def _process(self, stems: Mapping[str, np.ndarray], scene: Scene, listener: Listener) -> np.ndarray:
        """``(2, samples)``: the voices with the scene's gains and CAD2's level compensation, remixed and
        processed by the hearing aid (per voice, then the band-pass on the remix, with ``per_stem``)."""
        scale = adjust_level(np.ones(1), self._gains(scene))[0]
        voices = [
            torch.from_numpy(np.asarray(stems[i], dtype=np.float64).T * (10 ** (scene.gains[i] / 20) * scale))
            for i in self.data.instruments
        ]
        if self.per_stem:
            return self.hearing_aid.limit(sum(self.hearing_aid.shape(v, listener) for v in voices)).numpy()
        return self.hearing_aid(torch.stack(voices).sum(0), listener).numpy()

    # --- enhance ---------------------------------------------------------------------------------------
    def enhance_digests(self, items: Sequence[SceneItem]) -> dict[str, str]:
        pieces = self._piece_fingerprints()
        settings = {
            "recipe": "rebalance/enhance",
            "hearing_aid": self.hearing_aid.settings,
            "rate": self.output_sample_rate,
            "per_stem": self.per_stem,
        }
        return {
            i.name: digest_of(
                settings,
                self.demixers[i.system].id,
                pieces[i.scene.piece],
                i.scene.gains,
                i.listener.to_dict(),
            )
            for i in items
        }

    def enhance_item(self, out_dir: Path, item: SceneItem, digest: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        stems = self.demix(item.system, self.audio, item.scene.piece, item.scene.piece, self.data.instruments)
        processed = self._process(stems, item.scene, item.listener).T
        output = resample(processed, self.data.sample_rate, self.output_sample_rate)
        write_audio(
            self.output_path(out_dir, item), output.T.astype(np.float32), self.output_sample_rate, "FLOAT"
        )
        return {
            "item": item.name,
            "system": item.system,
            "scene": item.scene.id,
            "listener": item.listener.id,
            "digest": digest,
            "peak": float(np.abs(output).max()),
            "wall_time_s": round(time.perf_counter() - t0, 3),
        }

    # --- evaluate --------------------------------------------------------------------------------------
    def evaluate_digests(self, out_dir: Path, items: Sequence[SceneItem]) -> dict[str, str]:
        from musicbench.utils.files import sha256_file

        pieces = self._piece_fingerprints()
        settings = {
            "recipe": "rebalance/evaluate",
            "hearing_aid": self.hearing_aid.settings,
            "per_stem": self.per_stem,
        }
        return {
            i.name: digest_of(
                settings,
                pieces[i.scene.piece],
                i.scene.gains,
                i.listener.to_dict(),
                sha256_file(self.output_path(out_dir, i)) if self.output_path(out_dir, i).is_file() else None,
            )
            for i in items
        }

    def evaluate_item(self, out_dir: Path, item: SceneItem, digest: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        rate = self.data.sample_rate
        clean = {i: self.audio.stem(item.scene.piece, i) for i in self.data.instruments}
        reference_mix = self._rebalance(clean, item.scene)  # (samples, 2) float64
        reference = self._process(clean, item.scene, item.listener)
        output, output_rate = read_audio(self.output_path(out_dir, item))
        refs = np.stack([resample(reference[e], rate, HAAQI_RATE) for e in range(2)])
        procs = np.stack([resample(output[e].double().numpy(), output_rate, HAAQI_RATE) for e in range(2)])
        length = min(refs.shape[-1], procs.shape[-1])
        refs, procs = refs[:, :length], procs[:, :length]
        rms = np.sqrt(np.mean(np.square(reference_mix), axis=0))
        notes, values = [], {f"{m}_{ear}": math.nan for m in METRICS for ear in ("left", "right")}
        if np.all(rms > 0):
            scores = haaqi(
                refs,
                procs,
                HAAQI_RATE,
                HAAQI_RATE,
                [item.listener.audiogram_left, item.listener.audiogram_right],
                equalisation=2,
                level1=[float(65 - 20 * np.log10(r)) for r in rms],
                seed=song_seed(item.scene.id),
                backend=self.backend,
            )
            values.update({"haaqi_left": float(scores[0]), "haaqi_right": float(scores[1])})
        else:
            notes.append("haaqi=nan: a channel of the reference mix is digitally silent (level1 undefined)")
        ref_t, proc_t = torch.from_numpy(refs), torch.from_numpy(procs)
        for name, metric in (("snr", snr), ("sdr", global_sdr)):
            per_ear = metric(ref_t[:, None], proc_t[:, None]).tolist()
            values.update({f"{name}_left": per_ear[0], f"{name}_right": per_ear[1]})
        means = {m: float(np.mean([values[f"{m}_left"], values[f"{m}_right"]])) for m in METRICS}
        return {
            "item": item.name,
            "system": item.system,
            "scene": item.scene.id,
            "song": item.scene.piece,
            "listener": item.listener.id,
            "group": severity_group(item.listener),
            "digest": digest,
            "score": means["haaqi"],
            "metrics": means,
            "scores": values,
            "notes": notes,
            "wall_time_s": round(time.perf_counter() - t0, 3),
        }

    def write_scores(self, results: Sequence[Mapping[str, Any]], path: Path) -> None:
        _write_rebalance_csv(results, path)

    def summary_meta(self) -> dict[str, Any]:
        return {
            "data": str(self.data.root),
            "split": self.data.split,
            "settings": {
                "hearing_aid": self.hearing_aid.settings,
                "rate": self.output_sample_rate,
                "per_stem": self.per_stem,
            },
        }


def _write_rebalance_csv(results: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """CAD2's ``scores.csv`` columns (scene, song, listener, left/right/avg HAAQI) plus SNR and SDR."""
    import csv
    import io

    from musicbench.utils.files import write_text_atomic

    columns = ["scene", "song", "listener", "left_haaqi", "right_haaqi", "avg_haaqi", "snr", "sdr"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for r in results:
        s = r["scores"]
        writer.writerow(
            [
                r["scene"],
                r["song"],
                r["listener"],
                s["haaqi_left"],
                s["haaqi_right"],
                r["score"],
                r["metrics"]["snr"],
                r["metrics"]["sdr"],
            ]
        )
    return write_text_atomic(path, buffer.getvalue())
