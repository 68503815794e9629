"""Shared fixtures: tiny generated datasets (seconds of audio) so tests never download anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TINY_CHORALES = dict(num_tracks=6, max_seconds=4.0, num_test=2, num_valid=1)


@pytest.fixture(scope="session", autouse=True)
def _hash_cache(tmp_path_factory):
    """Cache file hashes in the test session's temporary folder, not in the user's ~/.cache (the CLIs
    that tests start inherit the variable)."""
    from musicbench.utils.hashcache import set_cache_dir

    old = os.environ.get("MB_CACHE_DIR")
    os.environ["MB_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    set_cache_dir(None)
    yield
    if old is None:
        os.environ.pop("MB_CACHE_DIR", None)
    else:
        os.environ["MB_CACHE_DIR"] = old
    set_cache_dir(None)


@pytest.fixture(scope="session")
def tiny_chorales_root(tmp_path_factory) -> Path:
    """A tiny chorale dataset (6 tracks x 4 s, MUSDB18-HQ layout), generated once per test session."""
    from musicbench.data.chorales import generate_chorales

    root = tmp_path_factory.mktemp("chorales")
    generate_chorales(root, progress=False, **TINY_CHORALES)
    return root


@pytest.fixture(scope="session")
def tiny_hires_chorales_root(tmp_path_factory) -> Path:
    """The tiny chorale dataset rendered at 88.2 kHz (hi-res restoration), generated once per test session."""
    from musicbench.data.chorales import generate_chorales

    root = tmp_path_factory.mktemp("chorales_88k")
    generate_chorales(root, progress=False, sample_rate=88200, **TINY_CHORALES)
    return root


def copy_dataset(src: Path, dst: Path, change: str | None = None, update_manifest: bool = True) -> Path:
    """Copy a chorale dataset to ``dst``; with ``change``, that track's audio is halved in every file (new
    content, same length), and the manifest's hashes follow unless ``update_manifest`` is false."""
    import json
    import shutil

    import soundfile as sf

    from musicbench.utils.files import sha256_file

    shutil.copytree(src, dst)
    if change is None:
        return dst
    manifest = json.loads((dst / "manifest.json").read_text())
    (entry,) = [t for t in manifest["tracks"] if t["name"] == change]
    for fname in entry["files"]:
        path = dst / entry["split"] / change / fname
        audio, rate = sf.read(path, always_2d=True)
        sf.write(path, audio * 0.5, rate, subtype=sf.info(path).subtype)
        if update_manifest:
            entry["files"][fname] = sha256_file(path)
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


@pytest.fixture
def copy_chorales():
    """``copy_dataset`` (a copy of a chorale dataset, optionally with one track changed)."""
    return copy_dataset
