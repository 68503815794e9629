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
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from musicbench.audio.io import write_audio
from musicbench.data.manifest import MANIFEST_NAME, load_manifest, sha256_file
from musicbench.utils.files import write_json_atomic

log = logging.getLogger(__name__)

#: Bump whenever a change to this module changes the rendered audio or the layout: it is part of the
#: parameter digest, so existing datasets are regenerated instead of silently mixing two versions.
GENERATOR_VERSION = "1"

SOURCES: tuple[str, ...] = ("soprano", "alto", "tenor", "bass")
SPLITS: tuple[str, ...] = ("train", "test")
#: 0-based General MIDI programs of the Bach10 dataset: violin, clarinet, tenor sax, bassoon.
DEFAULT_PROGRAMS: dict[str, int] = {"soprano": 40, "alto": 71, "tenor": 66, "bass": 70}
#: Pan positions in [-1 (left), 1 (right)]: high voices slightly left, low voices slightly right, so
#: the stereo image carries a little information about the source without being trivially separable.
DEFAULT_PANS: dict[str, float] = {"soprano": -0.35, "alto": -0.12, "tenor": 0.12, "bass": 0.35}
DEFAULT_GAINS_DB: dict[str, float] = {"soprano": 0.0, "alto": 0.0, "tenor": 0.0, "bass": 0.0}

MARKER_NAME = ".done.json"
_CORPUS_SUFFIXES = {".mxl", ".xml", ".musicxml", ".krn"}
_FADE_SECONDS = 0.05  # fade-out at the crop point so a cut in mid-note does not end in a click
_PCM16_MAX = 32767


class ChoraleRejected(Exception):
    """A chorale cannot be used (wrong number of parts, too short, a silent voice); the message says why."""


@dataclass(frozen=True)
class RenderParams:
    """Everything that determines the audio of one track; its digest tells fresh audio from stale.

    Units: ``sample_rate`` Hz, ``max_seconds``/``release_seconds`` s, ``tempo_range`` quarter-note BPM,
    ``pans`` in [-1 (left), 1 (right)], ``gains_db``/``peak_dbfs`` dB, velocities MIDI 1-127,
    ``programs`` 0-based GM numbers. ``soundfont_sha256`` ties the audio to the soundfont's content.
    """

    sample_rate: int = 44100
    max_seconds: float = 30.0
    seed: int = 0
    tempo_range: tuple[float, float] = (80.0, 100.0)
    programs: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PROGRAMS))
    pans: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PANS))
    gains_db: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_GAINS_DB))
    velocity: int = 90
    velocity_jitter: int = 8
    release_seconds: float = 1.0
    peak_dbfs: float = -1.0
    soundfont_sha256: str = ""

    def digest(self) -> str:
        """A short stable hash of the parameters and the generator version."""
        payload = json.dumps({"version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class RenderedTrack:
    """One rendered chorale: PCM_16 sample values as int32 arrays of shape ``(2, samples)``."""

    name: str
    source: str
    tempo_bpm: float
    stems: dict[str, np.ndarray]
    mixture: np.ndarray


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
    renderer = _VoiceRenderer(sf_path, params)
    selection_digest = hashlib.sha256(f"{params.digest()}/{min_seconds}".encode()).hexdigest()[:16]
    known_rejects = _previous_rejects(root, selection_digest)

    entries, rejected = [], {}
    candidates = _seeded_candidates(seed)
    with _progress_bar(progress, num_tracks) as advance:
        for source, path in candidates:
            if len(entries) == num_tracks:
                break
            if source in known_rejects:
                rejected[source] = known_rejects[source]
                continue
            split = "test" if len(entries) < num_test else "train"
            try:
                entry = _ensure_track(root, split, source, path, params, min_seconds, renderer)
            except ChoraleRejected as exc:
                log.info("skipping %s: %s", source, exc)
                rejected[source] = str(exc)
                continue
            entries.append(entry)
            advance(entry["name"])
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


def track_name(source: str) -> str:
    """Filesystem-safe track name from a corpus path: ``"bach/bwv10.7.mxl"`` → ``"bwv10.7"``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source).stem).strip("._") or "track"


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
        other = root / ("train" if split == "test" else "test") / name
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
    for split in SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        for d in sorted(split_dir.iterdir()):
            if d.is_dir() and (split, d.name) not in keep and (d / MARKER_NAME).is_file():
                _invalidate_manifest(root)
                log.info("removing %s: not part of the dataset with these parameters", d)
                shutil.rmtree(d)


def _build_manifest(entries, rejected, params, min_seconds, num_tracks, num_test, num_valid) -> dict:
    train = [e["name"] for e in entries if e["split"] == "train"]  # in seeded selection order
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
        "splits": {s: sorted(e["name"] for e in entries if e["split"] == s) for s in SPLITS},
        "validation_tracks": sorted(train[:num_valid]),
        "tracks": sorted(entries, key=lambda e: (e["split"], e["name"])),
        "skipped": [{"source": s, "reason": r} for s, r in sorted(rejected.items())],
    }


# --------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------


def _track_rng(params: RenderParams, name: str) -> np.random.Generator:
    # Seeded by (seed, name) rather than by position so a track sounds the same whatever else is chosen.
    name_key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng([params.seed, name_key])


def score_voices(path: Path) -> tuple[list[list[tuple[float, float, tuple[int, ...]]]], float]:
    """Parse a four-part score into per-voice note lists.

    Returns:
        ``(voices, end)``: for soprano, alto, tenor, bass (top to bottom, as the parts are ordered in
        the corpus) a list of ``(onset, duration, midi_pitches)`` in quarter lengths with ties merged
        (chords keep all pitches, rests and grace notes are dropped), and the score's end in quarter
        lengths.

    Raises:
        ChoraleRejected: the score does not have exactly four parts.
    """
    from music21 import converter

    score = converter.parse(str(path))
    parts = list(score.parts)
    if len(parts) != 4:
        raise ChoraleRejected(f"{len(parts)} parts, need exactly 4 (soprano, alto, tenor, bass)")
    voices = []
    for part in parts:
        notes = []
        for n in part.stripTies().flatten().notes:
            ql = float(n.quarterLength)
            if ql > 0:  # grace notes have no duration of their own
                notes.append((float(n.offset), ql, tuple(int(p.midi) for p in n.pitches)))
        voices.append(notes)
    # The stems are named by part order; a score ordered otherwise would mislabel them.
    means = [np.mean([p for _, _, ps in v for p in ps]) if v else np.nan for v in voices]
    if not all(hi > lo for hi, lo in zip(means, means[1:], strict=False)):
        mean_text = ", ".join(f"{m:.1f}" for m in means)
        raise ChoraleRejected(f"parts are not ordered soprano to bass (mean MIDI pitches {mean_text})")
    return voices, float(score.highestTime)


class _VoiceRenderer:
    """Renders one voice at a time on a fresh tinysoundfont synth, so stems are fully isolated."""

    def __init__(self, sf_path: Path, params: RenderParams):
        try:
            import tinysoundfont
        except ImportError as exc:
            raise ImportError(
                "the chorale generator renders with tinysoundfont, which is not installed: "
                "pip install --no-deps tinysoundfont  (its pyaudio dependency is only for live playback)"
            ) from exc
        self._tsf = tinysoundfont
        self._sf_bytes = sf_path.read_bytes()  # loaded once, parsed per voice from memory
        self._sf_path = sf_path
        self.sample_rate = params.sample_rate

    def render(self, program: int, events: list[tuple[int, int, int, int]], num_frames: int) -> np.ndarray:
        """Render note events to mono float32 of shape ``(num_frames,)``.

        ``events`` are ``(frame, kind, key, velocity)`` with kind 0 = note-off, 1 = note-on; they are
        sorted so that at equal frames offs come before ons (a repeated pitch is re-attacked).
        """
        synth = self._tsf.Synth(samplerate=self.sample_rate)
        sfid = synth.sfload(self._sf_bytes)
        try:
            synth.program_select(0, sfid, 0, program)
        except RuntimeError as exc:
            raise ValueError(f"GM program {program} is not in the soundfont {self._sf_path}: {exc}") from exc
        buf = memoryview(bytearray(num_frames * 2 * 4))  # interleaved stereo float32
        pos = 0
        for frame, kind, key, vel in sorted(events):
            frame = min(frame, num_frames)
            if frame > pos:
                synth.generate_simple(frame - pos, buffer=buf[pos * 8 : frame * 8])
                pos = frame
            if kind == 1:
                synth.noteon(0, key, vel)
            else:
                synth.noteoff(0, key)
        if num_frames > pos:
            synth.generate_simple(num_frames - pos, buffer=buf[pos * 8 : num_frames * 8])
        stereo = np.frombuffer(buf, dtype=np.float32).reshape(num_frames, 2)
        # Mono, then our own pan: the presets' built-in stereo would make the panning uncontrolled.
        return stereo.mean(axis=1, dtype=np.float64)


def render_chorale(
    path: Path, source: str, params: RenderParams, min_seconds: float, renderer: _VoiceRenderer
) -> RenderedTrack:
    """Parse, render, pan, balance and quantise one chorale.

    Raises:
        ChoraleRejected: not four parts, shorter than ``min_seconds``, or a voice silent in the crop.
    """
    name = track_name(source)
    rng = _track_rng(params, name)
    voices, end_ql = score_voices(path)
    tempo = round(float(rng.uniform(*params.tempo_range)), 1)
    sec_per_ql = 60.0 / tempo
    sr = params.sample_rate
    full_seconds = end_ql * sec_per_ql + params.release_seconds
    if full_seconds < min_seconds:
        raise ChoraleRejected(f"{full_seconds:.1f} s at {tempo} BPM, shorter than min_seconds={min_seconds}")
    num_frames = int(round(min(full_seconds, params.max_seconds) * sr))

    mono = {}
    for voice, notes in zip(SOURCES, voices, strict=True):
        events = []
        for onset, ql, pitches in notes:
            on = int(round(onset * sec_per_ql * sr))
            if on >= num_frames:
                break
            off = int(round((onset + ql) * sec_per_ql * sr))
            vel = int(
                np.clip(
                    params.velocity + rng.integers(-params.velocity_jitter, params.velocity_jitter + 1),
                    1,
                    127,
                )
            )
            for key in pitches:
                events += [(on, 1, key, vel), (off, 0, key, 0)]
        if not events:
            raise ChoraleRejected(f"the {voice} has no note in the first {num_frames / sr:.1f} s")
        mono[voice] = renderer.render(params.programs[voice], events, num_frames)
    stems = _mix_voices(mono, params, cropped=full_seconds > params.max_seconds)
    stems_pcm, mixture = _quantise(stems, params.peak_dbfs)
    for voice, pcm in stems_pcm.items():
        if not pcm.any():
            raise ChoraleRejected(f"the {voice} renders silent")
    return RenderedTrack(name=name, source=source, tempo_bpm=tempo, stems=stems_pcm, mixture=mixture)


def _mix_voices(mono: dict[str, np.ndarray], params: RenderParams, cropped: bool) -> dict[str, np.ndarray]:
    """Balance voices to equal RMS, apply gain and constant-power pan → stereo float64 ``(2, samples)``."""
    out = {}
    for voice, x in mono.items():
        rms = float(np.sqrt(np.mean(x**2)))
        if rms == 0.0:
            raise ChoraleRejected(f"the {voice} renders silent")
        # The GM presets differ by >10 dB in loudness; equal RMS makes the gains mean what they say.
        x = x / rms * 10 ** (params.gains_db[voice] / 20)
        if cropped:
            n = min(len(x), int(_FADE_SECONDS * params.sample_rate))
            x[len(x) - n :] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, n)))
        theta = (params.pans[voice] + 1) * np.pi / 4  # -1 → hard left, 0 → centre, 1 → hard right
        out[voice] = np.stack([np.cos(theta) * x, np.sin(theta) * x])
    return out


def _quantise(stems: dict[str, np.ndarray], peak_dbfs: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Scale so the mixture peaks at ``peak_dbfs``, round each stem to PCM_16 and sum the integers.

    Returns int32 arrays (values within the int16 range); the mixture is the exact sum of the stems.
    """
    mix = sum(stems.values())
    peak = float(np.abs(mix).max())
    scale = 10 ** (peak_dbfs / 20) * _PCM16_MAX / peak
    # Stems partly cancel in the mixture, so one stem can peak above it: never let a stem clip.
    stem_peak = max(float(np.abs(s).max()) for s in stems.values())
    scale = min(scale, 10 ** (peak_dbfs / 20) * _PCM16_MAX / stem_peak)
    pcm = {v: np.round(s * scale).astype(np.int32) for v, s in stems.items()}
    mixture = sum(pcm.values())
    if mixture.max() > _PCM16_MAX or mixture.min() < -_PCM16_MAX - 1:
        raise RuntimeError(
            f"mixture overflows PCM_16 (peak {np.abs(mixture).max()}); lower peak_dbfs={peak_dbfs}"
        )
    return pcm, mixture


# --------------------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------------------


class _progress_bar:
    """Context manager yielding ``advance(name)``; a ``rich`` bar when enabled, a no-op otherwise."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total, self._progress = enabled, total, None

    def __enter__(self):
        if not self.enabled:
            return lambda name: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("chorales"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
        )
        self._progress.start()
        task = self._progress.add_task("", total=self.total)
        return lambda name: self._progress.update(task, advance=1, description=name)

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.stop()
        return False
