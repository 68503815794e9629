"""One split vocabulary for the datamodules, the datasets on disk and the CLI."""

from __future__ import annotations

import pytest

from musicbench.data.splits import SPLIT_FOLDERS, SPLITS, check_split


def test_split_names_and_folders() -> None:
    assert SPLITS == ("train", "valid", "test")
    # On disk, validation tracks are a named subset of train/ (as in MUSDB18).
    assert SPLIT_FOLDERS == ("train", "test") and set(SPLIT_FOLDERS) <= set(SPLITS)
    assert [check_split(s) for s in SPLITS] == list(SPLITS)
    with pytest.raises(ValueError, match="split must be one of"):
        check_split("validation")


def test_generated_manifest_uses_the_split_folders(tiny_chorales_root) -> None:
    from musicbench.data.manifest import load_manifest

    manifest = load_manifest(tiny_chorales_root)
    assert tuple(manifest["splits"]) == SPLIT_FOLDERS
    assert all((tiny_chorales_root / s).is_dir() for s in SPLIT_FOLDERS)
