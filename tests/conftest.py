"""Shared fixtures: tiny generated datasets (seconds of audio) so tests never download anything."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_CHORALES = dict(num_tracks=6, max_seconds=4.0, num_test=2, num_valid=1)


@pytest.fixture(scope="session")
def tiny_chorales_root(tmp_path_factory) -> Path:
    """A tiny chorale dataset (6 tracks x 4 s, MUSDB18-HQ layout), generated once per test session."""
    from musicbench.data.chorales import generate_chorales

    root = tmp_path_factory.mktemp("chorales")
    generate_chorales(root, progress=False, **TINY_CHORALES)
    return root
