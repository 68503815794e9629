"""The track index base, the dataset-root check and FolderIndex (a folder of audio files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicbench.data.index import FolderIndex, TrackIndex, check_root
from musicbench.data.tracks import AudioFile, DatasetError


def test_check_root_names_the_problem_and_the_remedy(tmp_path: Path) -> None:
    assert check_root(tmp_path, "help") == tmp_path
    with pytest.raises(DatasetError, match="no dataset root is configured.*Get it there"):
        check_root("???", "Get it there.")
    with pytest.raises(DatasetError, match="does not exist.*Get it there"):
        check_root(tmp_path / "nowhere", "Get it there.")


def test_index_finds_once_and_checks_the_split() -> None:
    class Counting(TrackIndex):
        calls = 0

        def _find(self):
            Counting.calls += 1
            return {"train": ["x"], "valid": [], "test": ["y"]}

    index = Counting("/data")
    assert index.tracks("train") == ["x"] and index.tracks("test") == ["y"] and Counting.calls == 1
    assert index.sources == () and index.root == "/data"
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'valid', 'test'\)"):
        index.tracks("dev")


def test_folder_index_split_is_deterministic_and_stable(tmp_path: Path, layout) -> None:
    root = tmp_path / "music"
    for i in range(20):
        layout.write_tone(root / f"d{i % 3}" / f"t{i}.wav", seconds=0.1, sr=8000)
    index = FolderIndex(root, valid_fraction=0.2, test_fraction=0.3)
    before = {s: [t.name for t in index.tracks(s)] for s in ("train", "valid", "test")}
    assert sum(len(v) for v in before.values()) == 20 and all(before.values())
    layout.write_tone(root / "new.ogg", seconds=0.1, sr=8000)
    after = {s: [t.name for t in FolderIndex(root, 0.2, 0.3).tracks(s)] for s in before}
    for s in before:
        assert set(before[s]) <= set(after[s])


def test_folder_index_tracks_are_audio_files_at_their_own_rate(tmp_path: Path, layout) -> None:
    layout.write_tone(tmp_path / "m" / "sub" / "x.flac", seconds=0.5, sr=22050)
    (tmp_path / "m" / "notes.txt").write_text("not audio")  # not an audio extension: ignored
    (track,) = FolderIndex(tmp_path / "m", 0.0, 0.0).tracks("train")
    assert isinstance(track, AudioFile)
    assert (track.name, track.split, track.sample_rate, track.num_frames) == (
        "sub/x.flac",
        "train",
        22050,
        11025,
    )


def test_folder_index_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid_fraction=0.6 and data.source.test_fraction=0.6"):
        FolderIndex(tmp_path, 0.6, 0.6)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no audio files"):
        FolderIndex(tmp_path / "empty").tracks("train")
    with pytest.raises(DatasetError, match="AUDIO_ROOT"):
        FolderIndex(tmp_path / "nowhere").tracks("train")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.flac").write_bytes(b"not audio at all")
    with pytest.raises(DatasetError, match=r"broken\.flac.*data\.source\.extensions"):
        FolderIndex(tmp_path / "bad").tracks("test")
