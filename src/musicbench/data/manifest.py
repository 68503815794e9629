"""Dataset manifests: ``<root>/manifest.json`` lists splits, tracks and the sha256 of every file.

The layout is MUSDB18-HQ's: ``<root>/<split>/<track>/<file>.wav``; a manifest's ``tracks`` entries
carry ``name``, ``split`` and ``files`` (file name → sha256 hex digest).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from musicbench.data.splits import TRAIN
from musicbench.errors import UserError
from musicbench.utils.files import sha256_file

MANIFEST_NAME = "manifest.json"
_REQUIRED_KEYS = ("name", "sources", "splits", "tracks")


class ManifestError(UserError, RuntimeError):
    """A manifest is missing, unreadable or malformed; the message names the file and what to do."""


def load_manifest(root: str | os.PathLike, required: tuple[str, ...] = _REQUIRED_KEYS) -> dict[str, Any]:
    """Read and minimally validate ``<root>/manifest.json``.

    Raises:
        ManifestError: the file is missing, is not valid JSON, or lacks a key of ``required`` (default:
            ``name``, ``sources``, ``splits`` and ``tracks``; readers that only need some keys pass those).
    """
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(
            f"no manifest at {path}: is {root} a generated dataset? "
            f"Generate one with `mb-data chorales --root {root} --num-tracks N`."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}. Regenerate the dataset.") from exc
    if not isinstance(manifest, dict):
        raise ManifestError(f"manifest {path} must hold a JSON object, got {type(manifest).__name__}")
    missing = [k for k in required if k not in manifest]
    if missing:
        raise ManifestError(f"manifest {path} lacks the key(s) {missing}. Regenerate the dataset.")
    return manifest


def verify_manifest(root: str | os.PathLike) -> list[str]:
    """Check a dataset against its manifest; returns the problems found (empty list: all good).

    Checks that every listed file exists with the recorded sha256, that each track's split matches the
    ``splits`` lists, and that ``validation_tracks`` are train tracks. Raises :class:`ManifestError`
    when the manifest itself cannot be read.
    """
    root = Path(root)
    manifest = load_manifest(root)
    problems = []
    for track in manifest["tracks"]:
        track_dir = root / track["split"] / track["name"]
        for fname, expected in sorted(track["files"].items()):
            path = track_dir / fname
            if not path.is_file():
                problems.append(f"missing file: {path}")
            elif (actual := sha256_file(path)) != expected:
                problems.append(f"hash mismatch: {path} (manifest {expected[:12]}…, file {actual[:12]}…)")
    problems += _split_problems(manifest)
    return problems


def _split_problems(manifest: dict[str, Any]) -> list[str]:
    by_split: dict[str, set[str]] = {}
    for track in manifest["tracks"]:
        by_split.setdefault(track["split"], set()).add(track["name"])
    problems = []
    for split, names in manifest["splits"].items():
        if set(names) != by_split.get(split, set()):
            problems.append(f"splits[{split!r}] does not match the tracks listed with split {split!r}")
    train = set(manifest["splits"].get(TRAIN, []))
    stray = sorted(set(manifest.get("validation_tracks", [])) - train)
    if stray:
        problems.append(f"validation_tracks not in the train split: {stray}")
    return problems


def dataset_size_bytes(root: str | os.PathLike) -> int:
    """Total size in bytes of the audio files ``<root>/<split>/<track>/*.wav``."""
    return sum(p.stat().st_size for p in Path(root).glob("*/*/*.wav"))
