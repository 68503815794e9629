"""Score parsing and audio rendering for the ``chorales`` dataset (see :mod:`musicbench.data.chorales`).

A four-part score is parsed with music21 into per-voice note lists; each voice is rendered on its own
tinysoundfont synthesizer with a General MIDI instrument, balanced to equal RMS, gained, panned and
quantised to PCM_16 so that the mixture is the exact integer sum of the stems. Nothing here touches the
file system except reading the score and the soundfont; writing tracks is done by the dataset module.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

#: Bump whenever a change to the generator (this module or :mod:`musicbench.data.chorales`) changes the
#: rendered audio or the layout: it is part of the parameter digest, so existing datasets are regenerated
#: instead of silently mixing two versions.
GENERATOR_VERSION = "1"

SOURCES: tuple[str, ...] = ("soprano", "alto", "tenor", "bass")
#: 0-based General MIDI programs of the Bach10 dataset: violin, clarinet, tenor sax, bassoon.
DEFAULT_PROGRAMS: dict[str, int] = {"soprano": 40, "alto": 71, "tenor": 66, "bass": 70}
#: Pan positions in [-1 (left), 1 (right)]: high voices slightly left, low voices slightly right, so
#: the stereo image carries a little information about the source without being trivially separable.
DEFAULT_PANS: dict[str, float] = {"soprano": -0.35, "alto": -0.12, "tenor": 0.12, "bass": 0.35}
DEFAULT_GAINS_DB: dict[str, float] = {"soprano": 0.0, "alto": 0.0, "tenor": 0.0, "bass": 0.0}

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


def track_name(source: str) -> str:
    """Filesystem-safe track name from a corpus path: ``"bach/bwv10.7.mxl"`` → ``"bwv10.7"``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source).stem).strip("._") or "track"


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


class VoiceRenderer:
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
    path: Path, source: str, params: RenderParams, min_seconds: float, renderer: VoiceRenderer
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
