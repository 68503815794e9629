"""The embedded ``chorales`` dataset: Bach chorales from the music21 corpus rendered with a GM soundfont.

Each of the four voices (soprano, alto, tenor, bass) is rendered on its own synthesizer with a General
MIDI instrument from the TimGM6mb soundfont that ships inside ``pretty_midi`` (default: the Bach10
instrumentation violin / clarinet / tenor sax / bassoon), panned and mixed. The result is written in the
MUSDB18-HQ layout, so the framework has a real multi-source dataset without any download::

    <root>/{train,test}/<track>/{mixture,soprano,alto,tenor,bass}.wav   (stereo PCM_16)
    <root>/manifest.json                                                (written last, atomically)

Invariants the rest of the framework relies on:

- ``mixture.wav`` is *exactly* the sample-wise sum of the four stems as stored (integer sum of the
  PCM_16 values), so a perfect separator scores infinite SDR and remixing stems reproduces the mixture.
- No stem is all zero over a track (BSS-eval is undefined for a silent reference).
- Same parameters → byte-identical files. A rerun skips tracks whose files match the hashes in their
  ``.done.json`` marker and regenerates any track made with different parameters.

This module does the dataset orchestration (selection, splits, markers, resume, manifest); parsing a
score and rendering its audio live in :mod:`musicbench.data.chorale_render`, whose public names are
re-exported here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from musicbench.audio.io import write_audio
from musicbench.data.chorale_render import (
    DEFAULT_GAINS_DB,
    DEFAULT_PANS,
    DEFAULT_PROGRAMS,
    GENERATOR_VERSION,
    SOURCES,
    ChoraleRejected,
    RenderedTrack,
    RenderParams,
    VoiceRenderer,
    _quantise,  # noqa: F401  (re-exported: tests import it from here)
    render_chorale,
    score_voices,
    track_name,
)
from musicbench.data.manifest import MANIFEST_NAME, load_manifest, sha256_file
from musicbench.data.splits import SPLIT_FOLDERS, TEST, TRAIN
from musicbench.utils.files import write_json_atomic
from musicbench.utils.progress import progress_bar

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_GAINS_DB",
    "DEFAULT_PANS",
    "DEFAULT_PROGRAMS",
    "GENERATOR_VERSION",
    "MARKER_NAME",
    "SOURCES",
    "ChoraleRejected",
    "RenderParams",
    "RenderedTrack",
    "VoiceRenderer",
    "generate_chorales",
    "render_chorale",
    "score_voices",
    "track_name",
]

MARKER_NAME = ".done.json"
_CORPUS_SUFFIXES = {".mxl", ".xml", ".musicxml", ".krn"}


# --------------------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------------------


def generate_chorales(
    root: str | Path,
    *,
    num_tracks: int = 32,
    max_seconds: float = 30.0,
    num_test: int | None = None,
    num_valid: int | None = None,
    seed: int = 0,
    sample_rate: int = 44100,
    min_seconds: float | None = None,
    tempo_range: tuple[float, float] = (80.0, 100.0),
    programs: Mapping[str, int] | None = None,
    pans: Mapping[str, float] | None = None,
    gains_db: Mapping[str, float] | None = None,
    velocity: int = 90,
    velocity_jitter: int = 8,
    release_seconds: float = 1.0,
    peak_dbfs: float = -1.0,
    soundfont: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate (or complete) the chorale dataset under ``root`` and return its manifest.

    Args:
        root: dataset folder; created if needed. Tracks already generated with the same parameters
            are kept (checked against their hashes), others are (re)rendered.
        num_tracks: number of chorales (train + test).
        max_seconds: each track is cropped to at most this many seconds (a 50 ms fade ends a cut).
        num_test: tracks in the test split; default ``round(0.25 * num_tracks)``.
        num_valid: train tracks listed in ``validation_tracks`` (they stay in ``train/``, as in
            MUSDB18); default ``max(1, round(0.15 * num_train))``.
        seed: drives the choice of chorales, the splits, tempi and velocities.
        sample_rate: output sample rate in Hz.
        min_seconds: chorales whose rendered length (score + release) is shorter are skipped;
            default ``min(max_seconds, 10.0)``.
        tempo_range: ``(low, high)`` quarter-note tempo in BPM; each track draws one (seeded).
        programs: voice → 0-based GM program; default :data:`DEFAULT_PROGRAMS` (Bach10).
        pans: voice → pan in [-1, 1]; default :data:`DEFAULT_PANS`.
        gains_db: voice → gain in dB applied after the voices are balanced to equal RMS.
        velocity: mean MIDI velocity (1-127); ``velocity_jitter`` is the seeded ± variation per note.
        release_seconds: tail after the last note-off, so the final chord decays naturally.
        peak_dbfs: the mixture of each track is normalised to this peak (dBFS).
        soundfont: an .sf2 file; default the TimGM6mb.sf2 shipped with ``pretty_midi``.
        progress: show a ``rich`` progress bar over tracks.

    Returns:
        The manifest dict, also written to ``<root>/manifest.json``.
    """
    root = Path(root)
    num_test, num_valid = _resolve_split_sizes(num_tracks, num_test, num_valid)
    min_seconds = min(max_seconds, 10.0) if min_seconds is None else float(min_seconds)
    sf_path = _soundfont_path(soundfont)
    params = RenderParams(
        sample_rate=int(sample_rate),
        max_seconds=float(max_seconds),
        seed=int(seed),
        tempo_range=(float(tempo_range[0]), float(tempo_range[1])),
        programs=_per_voice(programs, DEFAULT_PROGRAMS, "programs", int),
        pans=_per_voice(pans, DEFAULT_PANS, "pans", float),
        gains_db=_per_voice(gains_db, DEFAULT_GAINS_DB, "gains_db", float),
        velocity=int(velocity),
        velocity_jitter=int(velocity_jitter),
        release_seconds=float(release_seconds),
        peak_dbfs=float(peak_dbfs),
        soundfont_sha256=sha256_file(sf_path),
    )
    _check_params(params, min_seconds)
    renderer = VoiceRenderer(sf_path, params)
    selection_digest = hashlib.sha256(f"{params.digest()}/{min_seconds}".encode()).hexdigest()[:16]
    known_rejects = _previous_rejects(root, selection_digest)

    entries, rejected = [], {}
    candidates = _seeded_candidates(seed)
    with progress_bar(progress, label="chorales") as bar:
        task = bar.add_task("", total=num_tracks)
        for source, path in candidates:
            if len(entries) == num_tracks:
                break
            if source in known_rejects:
                rejected[source] = known_rejects[source]
                continue
            split = TEST if len(entries) < num_test else TRAIN
            try:
                entry = _ensure_track(root, split, source, path, params, min_seconds, renderer)
            except ChoraleRejected as exc:
                log.info("skipping %s: %s", source, exc)
                rejected[source] = str(exc)
                continue
            entries.append(entry)
            bar.update(task, advance=1, description=entry["name"])
    if len(entries) < num_tracks:
        raise ValueError(
            f"only {len(entries)} usable Bach chorales found in the music21 corpus, but num_tracks="
            f"{num_tracks}; lower num_tracks or min_seconds (={min_seconds})"
        )
    _remove_stale_tracks(root, {(e["split"], e["name"]) for e in entries})
    manifest = _build_manifest(entries, rejected, params, min_seconds, num_tracks, num_test, num_valid)
    manifest["generator"]["params"]["soundfont"] = sf_path.name
    manifest["generator"]["selection_digest"] = selection_digest
    write_json_atomic(root / MANIFEST_NAME, manifest)
    return manifest


# --------------------------------------------------------------------------------------------------------
# Parameters, candidates, splits
# --------------------------------------------------------------------------------------------------------


def _resolve_split_sizes(num_tracks: int, num_test: int | None, num_valid: int | None) -> tuple[int, int]:
    if num_tracks < 1:
        raise ValueError(f"num_tracks must be >= 1, got {num_tracks}")
    num_test = round(0.25 * num_tracks) if num_test is None else int(num_test)
    if not 0 <= num_test <= num_tracks:
        raise ValueError(f"num_test must be in [0, num_tracks={num_tracks}], got {num_test}")
    num_train = num_tracks - num_test
    if num_valid is None:
        num_valid = max(1, round(0.15 * num_train)) if num_train else 0
    if not 0 <= int(num_valid) <= num_train:
        raise ValueError(
            f"num_valid must be in [0, num_train={num_train}] (a subset of train), got {num_valid}"
        )
    return num_test, int(num_valid)


def _per_voice(values: Mapping[str, Any] | None, default: Mapping[str, Any], what: str, cast) -> dict:
    if values is None:
        return dict(default)
    unknown = set(values) - set(SOURCES)
    if unknown:
        raise ValueError(f"{what}: unknown voice(s) {sorted(unknown)}; the voices are {list(SOURCES)}")
    # A partial mapping overrides only the voices it names.
    return {v: cast(values.get(v, default[v])) for v in SOURCES}


def _check_params(p: RenderParams, min_seconds: float) -> None:
    if p.sample_rate < 8000:
        raise ValueError(f"sample_rate must be >= 8000 Hz, got {p.sample_rate}")
    if not 0 < min_seconds <= p.max_seconds:
        raise ValueError(f"need 0 < min_seconds <= max_seconds, got {min_seconds} and {p.max_seconds}")
    lo, hi = p.tempo_range
    if not 0 < lo <= hi:
        raise ValueError(f"tempo_range must be (low, high) BPM with 0 < low <= high, got {p.tempo_range}")
    for voice, prog in p.programs.items():
        if not 0 <= prog <= 127:
            raise ValueError(f"programs[{voice!r}] must be a 0-based GM program in [0, 127], got {prog}")
    for voice, pan in p.pans.items():
        if not -1.0 <= pan <= 1.0:
            raise ValueError(f"pans[{voice!r}] must be in [-1, 1], got {pan}")
    if not 1 <= p.velocity <= 127 or p.velocity_jitter < 0:
        raise ValueError(
            f"velocity must be in [1, 127] and velocity_jitter >= 0, got {p.velocity}, {p.velocity_jitter}"
        )
    if p.peak_dbfs >= 0 or p.release_seconds < 0:
        raise ValueError(
            f"need peak_dbfs < 0 and release_seconds >= 0, got {p.peak_dbfs}, {p.release_seconds}"
        )


def _soundfont_path(soundfont: str | Path | None) -> Path:
    if soundfont is None:
        import pretty_midi  # only for the location of the soundfont it ships

        soundfont = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    path = Path(soundfont)
    if not path.is_file():
        raise FileNotFoundError(
            f"soundfont not found: {path}. The default TimGM6mb.sf2 ships with pretty_midi "
            "(reinstall it: pip install --force-reinstall pretty_midi) or pass soundfont=<file.sf2>."
        )
    return path


def _seeded_candidates(seed: int) -> list[tuple[str, Path]]:
    """All Bach scores of the music21 corpus as ``(source, path)`` in a seeded order.

    Sorted by corpus path first so the order does not depend on the file system, then permuted by the
    seed. A name that occurs twice (the same chorale as .krn and .mxl) keeps its first source only.
    """
    import music21
    from music21 import corpus

    corpus_dir = Path(music21.__file__).parent / "corpus"
    by_source: dict[str, Path] = {}
    for p in corpus.getComposer("bach"):
        p = Path(p)
        if p.suffix.lower() in _CORPUS_SUFFIXES:
            source = p.relative_to(corpus_dir).as_posix() if p.is_relative_to(corpus_dir) else p.name
            by_source[source] = p
    seen, unique = set(), []
    for source in sorted(by_source):
        if track_name(source) not in seen:
            seen.add(track_name(source))
            unique.append((source, by_source[source]))
    if not unique:
        raise RuntimeError(
            "the music21 corpus has no Bach scores; is music21 installed completely (pip install music21)?"
        )
    order = np.random.default_rng(seed).permutation(len(unique))
    return [unique[i] for i in order]


def _previous_rejects(root: Path, selection_digest: str) -> dict[str, str]:
    """Chorales an earlier run with the same parameters rejected, so a rerun need not parse them again."""
    if not (root / MANIFEST_NAME).is_file():
        return {}
    try:
        manifest = load_manifest(root)
    except Exception:  # a corrupt manifest is rewritten at the end; it only costs re-parsing here
        return {}
    if manifest.get("generator", {}).get("selection_digest") != selection_digest:
        return {}
    return {s["source"]: s["reason"] for s in manifest.get("skipped", [])}


# --------------------------------------------------------------------------------------------------------
# One track: reuse if done, else parse, render, write
# --------------------------------------------------------------------------------------------------------


def _ensure_track(
    root: Path, split: str, source: str, path: Path, params: RenderParams, min_seconds: float, renderer
) -> dict[str, Any]:
    """Return the manifest entry of one track, rendering and writing it unless it is already done."""
    name = track_name(source)
    track_dir = root / split / name
    marker = _valid_marker(track_dir, params)
    if marker is None:
        _invalidate_manifest(root)
        other = root / (TRAIN if split == TEST else TEST) / name
        if _valid_marker(other, params) is not None:
            # Only the split changed (e.g. another num_test): move the finished folder, don't re-render.
            if track_dir.exists():
                shutil.rmtree(track_dir)
            track_dir.parent.mkdir(parents=True, exist_ok=True)
            other.replace(track_dir)
            marker = _valid_marker(track_dir, params)
    if marker is None:
        track = render_chorale(path, source, params, min_seconds, renderer)
        marker = _write_track(track_dir, track, params)
    return {"name": name, "split": split, **marker["track"], "files": marker["files"]}


def _valid_marker(track_dir: Path, params: RenderParams) -> dict | None:
    """The track's ``.done.json`` if it was made with ``params`` and every file matches its hash."""
    try:
        marker = json.loads((track_dir / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if marker.get("params_digest") != params.digest():
        return None
    files = marker.get("files", {})
    if set(files) != {f"{s}.wav" for s in ("mixture", *SOURCES)}:
        return None
    for fname, digest in files.items():
        if not (track_dir / fname).is_file() or sha256_file(track_dir / fname) != digest:
            return None
    return marker


def _write_track(track_dir: Path, track: RenderedTrack, params: RenderParams) -> dict[str, Any]:
    """Write the five wavs atomically, check they read back exactly, then write the marker last."""
    if track_dir.exists():
        # Remove the marker first: a run killed while rewriting must not find an old marker valid.
        (track_dir / MARKER_NAME).unlink(missing_ok=True)
        for leftover in track_dir.glob(".*.tmp.wav"):  # temporaries of a run killed with SIGKILL
            leftover.unlink()
    files = {}
    for label, pcm in (("mixture", track.mixture), *track.stems.items()):
        path = track_dir / f"{label}.wav"
        # x / 32768 is exact in float32 and libsndfile maps it back to the same PCM_16 value.
        write_audio(path, pcm.astype(np.float32) / 32768.0, params.sample_rate, subtype="PCM_16")
        back = sf.read(str(path), dtype="int16", always_2d=True)[0].T
        if not np.array_equal(back, pcm):
            raise RuntimeError(
                f"{path} does not read back the PCM values written; libsndfile scaling changed?"
            )
        files[path.name] = sha256_file(path)
    num_frames = int(track.mixture.shape[-1])
    marker = {
        "generator_version": GENERATOR_VERSION,
        "params_digest": params.digest(),
        "track": {
            "duration": round(num_frames / params.sample_rate, 6),
            "num_frames": num_frames,
            "source": track.source,
            "tempo_bpm": track.tempo_bpm,
        },
        "files": files,
    }
    write_json_atomic(track_dir / MARKER_NAME, marker)
    return marker


def _invalidate_manifest(root: Path) -> None:
    """Remove the manifest before the dataset changes: a manifest on disk always describes finished data."""
    (root / MANIFEST_NAME).unlink(missing_ok=True)


def _remove_stale_tracks(root: Path, keep: set[tuple[str, str]]) -> None:
    """Delete generated track folders (those with our marker) that are not part of this dataset."""
    for split in SPLIT_FOLDERS:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        for d in sorted(split_dir.iterdir()):
            if d.is_dir() and (split, d.name) not in keep and (d / MARKER_NAME).is_file():
                _invalidate_manifest(root)
                log.info("removing %s: not part of the dataset with these parameters", d)
                shutil.rmtree(d)


def _build_manifest(entries, rejected, params, min_seconds, num_tracks, num_test, num_valid) -> dict:
    train = [e["name"] for e in entries if e["split"] == TRAIN]  # in seeded selection order
    all_params = {
        **asdict(params),
        "num_tracks": num_tracks,
        "num_test": num_test,
        "num_valid": num_valid,
        "min_seconds": min_seconds,
    }
    all_params["tempo_range"] = list(params.tempo_range)
    return {
        "name": "chorales",
        "format_version": 1,
        "generator": {
            "name": "musicbench.data.chorales",
            "version": GENERATOR_VERSION,
            "params": all_params,
            "params_digest": params.digest(),
        },
        "sample_rate": params.sample_rate,
        "channels": 2,
        "sources": list(SOURCES),
        "splits": {s: sorted(e["name"] for e in entries if e["split"] == s) for s in SPLIT_FOLDERS},
        "validation_tracks": sorted(train[:num_valid]),
        "tracks": sorted(entries, key=lambda e: (e["split"], e["name"])),
        "skipped": [{"source": s, "reason": r} for s, r in sorted(rejected.items())],
    }
