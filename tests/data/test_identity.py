"""Dataset identity: fingerprints follow the content, not the path; run folders refuse other data."""

import json

import pytest

from musicbench.data.identity import (
    DATA_JSON,
    DataChangedError,
    check_run_data,
    dataset_identity,
)
from musicbench.data.musdb import MusdbDataModule
from musicbench.data.tracks import DatasetError

SOURCES = ["soprano", "alto", "tenor", "bass"]


def _identity(root):
    return dataset_identity(MusdbDataModule(root, SOURCES), progress=False)


def _test_tracks(root):
    return json.loads((root / "manifest.json").read_text())["splits"]["test"]


def test_a_moved_dataset_keeps_its_identity(tmp_path, tiny_chorales_root, copy_chorales):
    moved = copy_chorales(tiny_chorales_root, tmp_path / "moved")
    before, after = _identity(tiny_chorales_root), _identity(moved)
    assert after["digest"] == before["digest"] and after["splits"] == before["splits"]
    assert after["root"] == str(moved.resolve()) != before["root"]
    assert sorted(after["splits"]["test"]["tracks"]) == sorted(_test_tracks(tiny_chorales_root))


def test_changed_content_changes_only_that_tracks_fingerprint(tmp_path, tiny_chorales_root, copy_chorales):
    track = _test_tracks(tiny_chorales_root)[0]
    changed = copy_chorales(tiny_chorales_root, tmp_path / "changed", change=track)
    before, after = _identity(tiny_chorales_root), _identity(changed)
    assert after["digest"] != before["digest"]
    old, new = before["splits"]["test"]["tracks"], after["splits"]["test"]["tracks"]
    assert [n for n in new if new[n] != old[n]] == [track]
    assert after["splits"]["train"] == before["splits"]["train"]


def test_a_file_that_differs_from_its_manifest_hash_is_named(tmp_path, tiny_chorales_root, copy_chorales):
    track = _test_tracks(tiny_chorales_root)[0]
    root = copy_chorales(tiny_chorales_root, tmp_path / "bad", change=track, update_manifest=False)
    with pytest.raises(DatasetError) as err:
        _identity(root)
    msg = str(err.value)
    assert str(root / "test" / track / "mixture.wav") in msg
    assert "manifest.json" in msg and f"mb-data verify --root {root}" in msg


def test_a_run_folder_refuses_other_data_and_accepts_a_move(tmp_path, tiny_chorales_root, copy_chorales):
    track = _test_tracks(tiny_chorales_root)[0]
    original = _identity(tiny_chorales_root)
    run = tmp_path / "run"
    check_run_data(run, original)  # a fresh folder records its data
    assert json.loads((run / DATA_JSON).read_text())["digest"] == original["digest"]

    changed = _identity(copy_chorales(tiny_chorales_root, tmp_path / "changed", change=track))
    check_run_data(run, changed)  # nothing computed from the old data yet: the record follows
    check_run_data(run, original)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    with pytest.raises(DataChangedError) as err:
        check_run_data(run, changed)
    msg = str(err.value)
    assert f"test: changed {track}" in msg and "train:" not in msg
    assert original["root"] in msg and changed["root"] in msg and "run_id=" in msg
    assert json.loads((run / DATA_JSON).read_text())["digest"] == original["digest"]  # not overwritten

    moved = _identity(copy_chorales(tiny_chorales_root, tmp_path / "moved"))
    check_run_data(run, moved)  # same content elsewhere: accepted, the record names the new root
    assert json.loads((run / DATA_JSON).read_text())["root"] == moved["root"]
