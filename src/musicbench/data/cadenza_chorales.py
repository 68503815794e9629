"""The chorales in the layout of the Cadenza CAD2 task 2 (rebalancing classical music) data: writer and loader.

A rebalancing scene asks for a piece to be remixed with a gain per instrument (dB) and played to a
listener with a hearing loss. The file names and JSON schemas mirror CAD2 task 2's metadata (pyclarity's
``recipes/cad2/task2``), with the four chorale voices as the instruments::

    <root>/audio/<split>/<piece>/{mixture,soprano,alto,tenor,bass}.wav   links to the chorales' files
    <root>/metadata/music.<split>.json            piece -> {"mixture": {...}, "source_1": {...}, ...}
    <root>/metadata/gains.json                    gain id -> {"source_1": dB, ..., "source_4": dB}
    <root>/metadata/scenes.<split>.json           scene id -> {"music": piece, "gain": gain id}
    <root>/metadata/scene_listeners.<split>.json  scene id -> [listener id, ...]
    <root>/metadata/listeners.<split>.json        listener id -> audiograms (Cadenza/Clarity format)
    <root>/metadata/listener_groups.<split>.json  listener id -> {"standard_audiogram", "severity"}
    <root>/cadenza.json                           parameters and counts; written last

Each entry of ``music.<split>.json`` is ``{"track": path under audio/, "instrument": "Mixture" or the
voice, "start": s, "duration": s}``: the audio files are whole chorales and ``start``/``duration`` select
the excerpt to evaluate (in CAD2 the validation audio is already cut; here the loader cuts it). Splits:
``train`` (the chorales' train tracks minus their validation subset), ``valid`` and ``test``. Scene ids
follow CAD2's ranges (``S1xxxx`` train, ``S5xxxx`` valid, ``S6xxxx`` test); every scene has its own gain
entry, ``G`` + the scene's number.

CAD2's ``compressor_params.<split>.json`` (per listener ``cr_l``, ``cr_r``, ``gain_l``, ``gain_r``) is not
written: the CAD2 recipe reads those values as data and pyclarity holds no rule deriving them from an
audiogram, so there is nothing to mirror.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from musicbench.audio.io import read_audio
from musicbench.data.manifest import MANIFEST_NAME, load_manifest, sha256_file
from musicbench.data.splits import TEST, TRAIN, VALID, check_split
from musicbench.data.tracks import DatasetError
from musicbench.hearing.audiogram import Listener, load_listeners, save_listeners
from musicbench.hearing.standard_audiograms import generate_listeners
from musicbench.utils.files import write_json_atomic
from musicbench.utils.progress import progress_bar

INDEX_NAME: Final = "cadenza.json"
AUDIO_DIR: Final = "audio"
METADATA_DIR: Final = "metadata"
FORMAT_VERSION: Final = 1
MIXTURE_KEY: Final = "mixture"
MIXTURE_INSTRUMENT: Final = "Mixture"  # CAD2's "instrument" of the mixture entry
CADENZA_SPLITS: Final = (TRAIN, VALID, TEST)

# CAD2's numbering: scene ids S1xxxx (train), S5xxxx (valid), S6xxxx (test); listener ids per split.
_FIRST_SCENE: Final = {TRAIN: 10001, VALID: 50001, TEST: 60001}
_FIRST_LISTENER: Final = {TRAIN: 1001, VALID: 5001, TEST: 6001}


class CadenzaDataError(DatasetError):
    """The Cadenza chorale layout on disk is missing or inconsistent; the message names the file and key."""


def metadata_path(root: str | os.PathLike, name: str, split: str | None = None) -> Path:
    """``<root>/metadata/<name>.<split>.json`` (or ``<name>.json`` without a split)."""
    suffix = f".{split}.json" if split is not None else ".json"
    return Path(root) / METADATA_DIR / f"{name}{suffix}"


# --------------------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------------------


def build_cadenza_chorales(
    root: str | os.PathLike,
    chorales_root: str | os.PathLike,
    *,
    pieces_per_split: int = 4,
    scenes_per_piece: int = 2,
    listeners_per_split: int = 6,
    listeners_per_scene: int = 3,
    segment_seconds: float = 8.0,
    max_gain_db: int = 10,
    seed: int = 0,
    progress: bool = True,
) -> tuple[dict[str, Any], bool]:
    """Write the Cadenza layout under ``root`` from the chorale dataset at ``chorales_root``.

    Args:
        root: output folder.
        chorales_root: a chorale dataset (``mb-data chorales``); its files are hard-linked into
            ``root/audio`` (symbolic links where a hard link is impossible, e.g. another file system).
        pieces_per_split: chorales per split (a seeded choice; fewer where a split has fewer).
        scenes_per_piece: scenes (gain settings) per piece.
        listeners_per_split: listeners per split; any four consecutive ones cover the severity groups
            normal, mild, moderate and severe (:func:`~musicbench.hearing.standard_audiograms.generate_listeners`).
        listeners_per_scene: listeners per scene, assigned in rotation so each listener hears about as
            many scenes as any other.
        segment_seconds: length of the excerpt to evaluate (s); a piece shorter than that is used whole.
            The start is seeded and a multiple of 10 ms.
        max_gain_db: each voice's target gain is a seeded whole number of dB in ``[-max_gain_db, max_gain_db]``.
        seed: same arguments and chorales give byte-identical metadata.
        progress: show a progress bar over the pieces.

    Returns:
        ``(index, written)``: the contents of ``root/cadenza.json`` and whether anything was written
        (``False`` when a previous run with the same arguments and chorales is complete).
    """
    root, chorales_root = Path(root), Path(chorales_root)
    _check_counts(pieces_per_split, scenes_per_piece, listeners_per_split, listeners_per_scene)
    if not segment_seconds > 0:
        raise ValueError(f"segment_seconds must be > 0, got {segment_seconds}")
    if max_gain_db < 0:
        raise ValueError(f"max_gain_db must be >= 0, got {max_gain_db}")
    # A MUSDB18-layout manifest of another dataset lacks the durations and rate this layout needs.
    manifest = load_manifest(chorales_root, required=("name", "sample_rate", "sources", "splits", "tracks"))
    if manifest["name"] != "chorales":
        raise CadenzaDataError(
            f"{chorales_root / MANIFEST_NAME}: 'name' is {manifest['name']!r}, expected 'chorales'; point "
            "--chorales-root at a dataset written by `mb-data chorales`"
        )
    params = {
        "pieces_per_split": pieces_per_split,
        "scenes_per_piece": scenes_per_piece,
        "listeners_per_split": listeners_per_split,
        "listeners_per_scene": listeners_per_scene,
        "segment_seconds": float(segment_seconds),
        "max_gain_db": int(max_gain_db),
        "seed": seed,
    }
    chorales_digest = sha256_file(chorales_root / MANIFEST_NAME)
    previous = _read_index(root)
    if previous is not None and previous.get("params") == params:
        if previous.get("chorales_manifest_sha256") == chorales_digest and _complete(root, previous):
            return previous, False
    # Whatever follows may change files the old index describes: it goes first, comes back last.
    (root / INDEX_NAME).unlink(missing_ok=True)

    sources = list(manifest["sources"])
    tracks = {t["name"]: t for t in manifest["tracks"]}
    validation = set(manifest.get("validation_tracks", []))
    split_tracks = {
        TRAIN: [n for n in manifest["splits"].get(TRAIN, []) if n not in validation],
        VALID: sorted(validation),
        TEST: list(manifest["splits"].get(TEST, [])),
    }
    gains: dict[str, dict[str, int]] = {}
    per_split: dict[str, dict[str, Any]] = {}
    for k, split in enumerate(CADENZA_SPLITS):
        rng = np.random.default_rng([seed, k])
        names = sorted(split_tracks[split])
        chosen = (
            sorted(rng.choice(names, min(pieces_per_split, len(names)), replace=False).tolist())
            if names
            else []
        )
        per_split[split] = _split_metadata(
            split, chosen, tracks, sources, rng, params, gains, listener_seed=int(rng.integers(2**31))
        )

    pieces = [(split, piece) for split in CADENZA_SPLITS for piece in per_split[split]["music"]]
    links: set[str] = set()
    with progress_bar(progress, "cadenza") as bar:
        task = bar.add_task("linking audio", total=len(pieces))
        for split, piece in pieces:
            entry = tracks[piece]
            for fname in [f"{MIXTURE_KEY}.wav", *(f"{s}.wav" for s in sources)]:
                src = chorales_root / entry["split"] / piece / fname
                links.add(_link(src, root / AUDIO_DIR / split / piece / fname))
            bar.advance(task)
    _remove_stale_audio(root, {split: set(per_split[split]["music"]) for split in CADENZA_SPLITS})

    for split in CADENZA_SPLITS:
        meta = per_split[split]
        write_json_atomic(metadata_path(root, "music", split), meta["music"])
        write_json_atomic(metadata_path(root, "scenes", split), meta["scenes"])
        write_json_atomic(metadata_path(root, "scene_listeners", split), meta["scene_listeners"])
        save_listeners(meta["listeners"], metadata_path(root, "listeners", split))
        write_json_atomic(metadata_path(root, "listener_groups", split), meta["listener_groups"])
    write_json_atomic(metadata_path(root, "gains"), gains)
    index = {
        "name": "cadenza_chorales",
        "format_version": FORMAT_VERSION,
        "params": params,
        "chorales_manifest_sha256": chorales_digest,
        "sample_rate": manifest["sample_rate"],
        "instruments": sources,
        "audio_links": sorted(links),
        "splits": {
            split: {
                "pieces": len(per_split[split]["music"]),
                "scenes": len(per_split[split]["scenes"]),
                "listeners": len(per_split[split]["listeners"]),
                "pairs": sum(len(v) for v in per_split[split]["scene_listeners"].values()),
            }
            for split in CADENZA_SPLITS
        },
    }
    write_json_atomic(root / INDEX_NAME, index)
    return index, True


def _check_counts(*counts: int) -> None:
    names = ("pieces_per_split", "scenes_per_piece", "listeners_per_split", "listeners_per_scene")
    for name, value in zip(names, counts, strict=True):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if counts[3] > counts[2]:
        raise ValueError(
            f"listeners_per_scene ({counts[3]}) must not exceed listeners_per_split ({counts[2]})"
        )


def _split_metadata(
    split: str,
    pieces: list[str],
    tracks: Mapping[str, Mapping[str, Any]],
    sources: list[str],
    rng: np.random.Generator,
    params: Mapping[str, Any],
    gains: dict[str, dict[str, int]],
    listener_seed: int,
) -> dict[str, Any]:
    listeners, audiograms, groups = generate_listeners(
        params["listeners_per_split"], listener_seed, first_id=_FIRST_LISTENER[split]
    )
    listener_ids = list(listeners)
    music: dict[str, Any] = {}
    scenes: dict[str, Any] = {}
    scene_listeners: dict[str, list[str]] = {}
    number = _FIRST_SCENE[split]
    per_scene = params["listeners_per_scene"]
    for piece in pieces:
        duration = float(tracks[piece]["duration"])
        length = min(params["segment_seconds"], duration)
        # Whole 10 ms steps keep the JSON short and the excerpt inside the track.
        start = math.floor(rng.uniform(0.0, duration - length) * 100) / 100
        length = math.floor(length * 100) / 100
        entry = {MIXTURE_KEY: _music_entry(split, piece, MIXTURE_KEY, MIXTURE_INSTRUMENT, start, length)}
        for i, source in enumerate(sources, 1):
            entry[f"source_{i}"] = _music_entry(split, piece, source, source, start, length)
        music[piece] = entry
        for _ in range(params["scenes_per_piece"]):
            scene_id, gain_id = f"S{number}", f"G{number}"
            m = params["max_gain_db"]
            gains[gain_id] = {f"source_{i}": int(rng.integers(-m, m + 1)) for i in range(1, len(sources) + 1)}
            scenes[scene_id] = {"music": piece, "gain": gain_id}
            k = number - _FIRST_SCENE[split]
            scene_listeners[scene_id] = [
                listener_ids[(k * per_scene + j) % len(listener_ids)] for j in range(per_scene)
            ]
            number += 1
    return {
        "music": music,
        "scenes": scenes,
        "scene_listeners": scene_listeners,
        "listeners": listeners,
        "listener_groups": {
            lid: {"standard_audiogram": audiograms[lid], "severity": groups[lid]} for lid in listener_ids
        },
    }


def _music_entry(split: str, piece: str, stem: str, instrument: str, start: float, duration: float) -> dict:
    return {
        "track": f"{split}/{piece}/{stem}.wav",
        "instrument": instrument,
        "start": start,
        "duration": duration,
    }


def _link(src: Path, dst: Path) -> str:
    """Make ``dst`` a hard link to ``src`` (else a symbolic link); returns ``"hardlink"`` or ``"symlink"``."""
    if not src.is_file():
        raise CadenzaDataError(
            f"{src} is missing from the chorale dataset; run `mb-data verify --root {src.parents[2]}` "
            "and regenerate it with `mb-data chorales`"
        )
    if dst.is_symlink() and dst.resolve() == src.resolve():
        return "symlink"
    if dst.exists() and not dst.is_symlink() and os.path.samefile(src, dst):
        return "hardlink"
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Link under a temporary name and rename: dst is never missing or half-made for a reader.
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
        kind = "hardlink"
    except OSError:  # another file system, or links not allowed there
        tmp.symlink_to(src.resolve())
        kind = "symlink"
    os.replace(tmp, dst)
    return kind


def _remove_stale_audio(root: Path, keep: Mapping[str, set[str]]) -> None:
    """Remove the links of pieces an earlier run chose and this one did not (the chorales keep theirs)."""
    audio = root / AUDIO_DIR
    if not audio.is_dir():
        return
    for split_dir in audio.iterdir():
        if not split_dir.is_dir():
            continue
        for piece_dir in split_dir.iterdir():
            if piece_dir.is_dir() and piece_dir.name not in keep.get(split_dir.name, set()):
                # Only links live here: removing them never touches the chorales' own files.
                for item in piece_dir.iterdir():
                    item.unlink()
                piece_dir.rmdir()


def _read_index(root: Path) -> dict[str, Any] | None:
    try:
        index = json.loads((root / INDEX_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return index if isinstance(index, dict) else None


def _complete(root: Path, index: Mapping[str, Any]) -> bool:
    """Whether every file a finished run writes is still there (audio: the music files' tracks)."""
    names = ("music", "scenes", "scene_listeners", "listeners", "listener_groups")
    paths = [metadata_path(root, "gains")] + [
        metadata_path(root, n, s) for s in CADENZA_SPLITS for n in names
    ]
    if not all(p.is_file() for p in paths):
        return False
    for split in CADENZA_SPLITS:
        try:
            music = json.loads(metadata_path(root, "music", split).read_text(encoding="utf-8"))
            tracks = [e["track"] for piece in music.values() for e in piece.values()]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False
        if not all((root / AUDIO_DIR / t).is_file() for t in tracks):
            return False
    return True


# --------------------------------------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """One rebalancing scene.

    Attributes:
        id: scene id (``"S50001"``).
        piece: the chorale (a key of ``music.<split>.json``).
        gain_id: the key of its gains in ``gains.json``.
        gains: instrument (voice) -> target gain in dB, in the instruments' order.
        listener_ids: the listeners the scene is played to.
        start: start of the excerpt in the piece's audio (s).
        end: end of the excerpt (s).
    """

    id: str
    piece: str
    gain_id: str
    gains: dict[str, float]
    listener_ids: tuple[str, ...]
    start: float
    end: float


class CadenzaScenes:
    """The scenes, listeners and audio of one split of a Cadenza chorale layout (see the module docstring).

    Everything is read and cross-checked on construction: a missing file, malformed JSON, a scene naming
    an unknown piece, gain id or listener, or gains for an unknown instrument raise
    :class:`CadenzaDataError` naming the file and the key. Audio is read on demand.

    Attributes:
        root: the layout's folder.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        sample_rate: of the audio (Hz).
        instruments: the voices, in the order of ``load_stems``'s first dimension.
        scenes: the split's scenes, ordered by id.
    """

    def __init__(self, root: str | os.PathLike, split: str) -> None:
        self.root = Path(root)
        self.split = check_split(split)
        index_path = self.root / INDEX_NAME
        index = _load_json(index_path, hint=f"write the layout with `mb-data cadenza --root {self.root} ...`")
        self.sample_rate = int(_get(index, "sample_rate", index_path))
        self.instruments: tuple[str, ...] = tuple(_get(index, "instruments", index_path))
        self._music = self._load_music()
        self._listeners = self._load_listeners()
        self.scenes: list[Scene] = self._load_scenes()

    # -- public ------------------------------------------------------------------------------------------

    @property
    def pieces(self) -> list[str]:
        """The split's pieces, sorted."""
        return sorted(self._music)

    def listeners(self) -> dict[str, Listener]:
        """The split's listeners, ``{id: Listener}`` (audiograms in dB HL at 250 Hz ... 8 kHz)."""
        return dict(self._listeners)

    def listener_groups(self) -> dict[str, dict[str, str]]:
        """``{listener id: {"standard_audiogram": "N2", "severity": "moderate"}}`` for the split."""
        path = metadata_path(self.root, "listener_groups", self.split)
        groups = _load_json(path)
        unknown = sorted(set(groups) ^ set(self._listeners))
        if unknown:
            raise CadenzaDataError(f"{path}: listener id(s) {unknown} do not match the listeners file")
        return groups

    def pairs(self) -> list[tuple[str, str]]:
        """Every ``(scene id, listener id)`` to evaluate, in scene then listener order (as CAD2's recipe)."""
        return [(scene.id, listener) for scene in self.scenes for listener in scene.listener_ids]

    def segment(self, piece: str) -> tuple[float, float]:
        """``(start, end)`` in seconds of the excerpt of ``piece`` to evaluate."""
        entry = self._piece(piece)[MIXTURE_KEY]
        # Rounded: 2.4 + 8.0 should read 10.4, not 10.400000000000002.
        return entry["start"], round(entry["start"] + entry["duration"], 6)

    def load_stems(self, piece: str, excerpt: bool = True) -> tuple[torch.Tensor, int]:
        """The voices of ``piece``.

        Args:
            piece: a piece of the split.
            excerpt: only the excerpt to evaluate (:meth:`segment`); ``False`` reads the whole piece.

        Returns:
            ``(stems, sample_rate)``: float32 ``(instruments, channels, samples)`` in
            :attr:`instruments` order, and the rate in Hz.
        """
        entry = self._piece(piece)
        sources = [k for k in entry if k != MIXTURE_KEY]
        audio = [self._read(entry[k], excerpt) for k in sources]
        return torch.stack(audio), self.sample_rate

    def load_mixture(self, piece: str, excerpt: bool = True) -> tuple[torch.Tensor, int]:
        """``(mixture, sample_rate)``: float32 ``(channels, samples)`` of ``piece`` (the sum of its stems)."""
        return self._read(self._piece(piece)[MIXTURE_KEY], excerpt), self.sample_rate

    # -- loading and checks ------------------------------------------------------------------------------

    def _piece(self, piece: str) -> dict[str, Any]:
        if piece not in self._music:
            raise CadenzaDataError(
                f"{metadata_path(self.root, 'music', self.split)}: no piece {piece!r} in split {self.split!r}; "
                f"pieces: {self.pieces}"
            )
        return self._music[piece]

    def _read(self, entry: Mapping[str, Any], excerpt: bool) -> torch.Tensor:
        path = self.root / AUDIO_DIR / entry["track"]
        if excerpt:
            offset = round(entry["start"] * self.sample_rate)
            frames = round(entry["duration"] * self.sample_rate)
            audio, rate = read_audio(path, frame_offset=offset, num_frames=frames)
            if audio.shape[-1] != frames:
                raise CadenzaDataError(
                    f"{path}: the excerpt {entry['start']} s + {entry['duration']} s runs past the end of the file"
                )
        else:
            audio, rate = read_audio(path)
        if rate != self.sample_rate:
            raise CadenzaDataError(f"{path}: sample rate {rate} Hz, {INDEX_NAME} says {self.sample_rate} Hz")
        return audio

    def _load_music(self) -> dict[str, dict[str, Any]]:
        path = metadata_path(self.root, "music", self.split)
        music = _load_json(path)
        for piece, entry in music.items():
            where = f"{path}: piece {piece!r}"
            if not isinstance(entry, dict) or MIXTURE_KEY not in entry:
                raise CadenzaDataError(f"{where}: expected an object with a {MIXTURE_KEY!r} entry")
            voices = []
            for key, item in entry.items():
                if not isinstance(item, dict):
                    raise CadenzaDataError(f"{where}: {key!r} must be an object")
                for field, kind in (
                    ("track", str),
                    ("instrument", str),
                    ("start", (int, float)),
                    ("duration", (int, float)),
                ):
                    if not isinstance(item.get(field), kind) or isinstance(item.get(field), bool):
                        raise CadenzaDataError(f"{where}: {key!r}: {field!r} is missing or not a {kind}")
                if item["start"] < 0 or item["duration"] <= 0:
                    raise CadenzaDataError(f"{where}: {key!r}: start must be >= 0 and duration > 0 (seconds)")
                if not (self.root / AUDIO_DIR / item["track"]).is_file():
                    raise CadenzaDataError(
                        f"{where}: {key!r}: audio file {self.root / AUDIO_DIR / item['track']} is missing; "
                        "rerun `mb-data cadenza`"
                    )
                if key != MIXTURE_KEY:
                    voices.append(item["instrument"])
            if tuple(voices) != self.instruments:
                raise CadenzaDataError(
                    f"{where}: instruments {voices} differ from {list(self.instruments)} in {self.root / INDEX_NAME}"
                )
        return music

    def _load_listeners(self) -> dict[str, Listener]:
        path = metadata_path(self.root, "listeners", self.split)
        _load_json(path)  # a missing or malformed file: the same message as the other files
        try:
            return load_listeners(path)
        except ValueError as exc:
            raise CadenzaDataError(str(exc)) from exc

    def _load_scenes(self) -> list[Scene]:
        scenes_path = metadata_path(self.root, "scenes", self.split)
        pairs_path = metadata_path(self.root, "scene_listeners", self.split)
        gains_path = metadata_path(self.root, "gains")
        scenes_raw, pairs_raw, gains_raw = (
            _load_json(scenes_path),
            _load_json(pairs_path),
            _load_json(gains_path),
        )
        missing = sorted(set(scenes_raw) - set(pairs_raw))
        if missing:
            raise CadenzaDataError(f"{pairs_path}: no listeners for scene(s) {missing}")
        extra = sorted(set(pairs_raw) - set(scenes_raw))
        if extra:
            raise CadenzaDataError(f"{pairs_path}: scene(s) {extra} are not in {scenes_path}")
        scenes = []
        for scene_id in sorted(scenes_raw):
            raw = scenes_raw[scene_id]
            where = f"{scenes_path}: scene {scene_id!r}"
            if (
                not isinstance(raw, dict)
                or not isinstance(raw.get("music"), str)
                or not isinstance(raw.get("gain"), str)
            ):
                raise CadenzaDataError(f"{where}: expected {{'music': piece, 'gain': gain id}}, got {raw!r}")
            piece, gain_id = raw["music"], raw["gain"]
            if piece not in self._music:
                raise CadenzaDataError(
                    f"{where}: 'music' is {piece!r}, which is not in {metadata_path(self.root, 'music', self.split)}"
                )
            if gain_id not in gains_raw:
                raise CadenzaDataError(f"{where}: 'gain' is {gain_id!r}, which is not in {gains_path}")
            gains = self._gains(gains_raw[gain_id], piece, f"{gains_path}: gain {gain_id!r}")
            listener_ids = pairs_raw[scene_id]
            if not isinstance(listener_ids, list) or not listener_ids:
                raise CadenzaDataError(
                    f"{pairs_path}: scene {scene_id!r}: expected a non-empty list of listener ids"
                )
            for lid in listener_ids:
                if lid not in self._listeners:
                    raise CadenzaDataError(
                        f"{pairs_path}: scene {scene_id!r}: listener {lid!r} is not in "
                        f"{metadata_path(self.root, 'listeners', self.split)}"
                    )
            start, end = self.segment(piece)
            scenes.append(Scene(scene_id, piece, gain_id, gains, tuple(listener_ids), start, end))
        return scenes

    def _gains(self, raw: Any, piece: str, where: str) -> dict[str, float]:
        if not isinstance(raw, dict):
            raise CadenzaDataError(f"{where}: expected an object source id -> dB, got {raw!r}")
        entry = self._music[piece]
        sources = {k: v["instrument"] for k, v in entry.items() if k != MIXTURE_KEY}
        for key, value in raw.items():
            if key not in sources:
                raise CadenzaDataError(
                    f"{where}: {key!r} is not an instrument of piece {piece!r} (its sources: {sorted(sources)})"
                )
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise CadenzaDataError(f"{where}: {key!r} must be a finite number of dB, got {value!r}")
        absent = sorted(set(sources) - set(raw))
        if absent:
            raise CadenzaDataError(f"{where}: no gain for {absent} of piece {piece!r}")
        return {sources[k]: float(raw[k]) for k in sources}


def _load_json(path: Path, hint: str = "rerun `mb-data cadenza`") -> Any:
    if not path.is_file():
        raise CadenzaDataError(f"{path} is missing; {hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CadenzaDataError(f"{path}: not valid JSON ({exc}); {hint}") from exc
    if not isinstance(data, dict):
        raise CadenzaDataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _get(mapping: Mapping[str, Any], key: str, path: Path) -> Any:
    if key not in mapping:
        raise CadenzaDataError(f"{path}: missing key {key!r}; rerun `mb-data cadenza`")
    return mapping[key]
