"""MusdbIndex: splits, validation lists and header checks on tiny datasets in MUSDB18-HQ layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicbench.data.musdb_index import MusdbIndex
from musicbench.data.tracks import DatasetError, Track, musdb_validation_tracks

SR = 8000
SATB = ["soprano", "alto", "tenor", "bass"]
MUSDB = ["drums", "bass", "other", "vocals"]


def index(root: Path, sources: list[str] = SATB, **kwargs) -> MusdbIndex:
    return MusdbIndex(root, sources, **{"sample_rate": SR, **kwargs})


def test_splits_follow_the_manifest(chorale_root: Path) -> None:
    idx = index(chorale_root)
    assert [t.name for t in idx.tracks("train")] == ["a", "b"]
    assert [t.name for t in idx.tracks("valid")] == ["c"]
    assert [t.name for t in idx.tracks("test")] == ["t1", "t2"]
    track = idx.tracks("valid")[0]
    assert isinstance(track, Track)
    assert (track.split, track.sources, track.sample_rate, track.num_frames) == ("valid", tuple(SATB), SR, SR)
    assert idx.format == "wav" and idx.manifest["name"] == "tiny"
    with pytest.raises(ValueError, match="split must be one of"):
        idx.tracks("validation")


def test_unconfigured_stems_are_reported(plain_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Training mixtures are sums of the configured sources, so leaving stems out is worth a warning."""
    with caplog.at_level("WARNING", logger="musicbench.data.musdb_index"):
        idx = index(plain_root, sources=["vocals", "drums"], valid_tracks=None)
        assert idx.tracks("train")[0].sources == ("vocals", "drums")
    assert "['bass', 'other']" in caplog.text


# ----------------------------------------------------------------------------------- validation lists
def test_default_validation_list_is_musdb_standard(tmp_path: Path, layout) -> None:
    standard = musdb_validation_tracks()
    assert len(standard) == 14 and "Actions - One Minute Smile" in standard
    others = ["Other Artist - Song A", "Zed - Song B"]
    root = layout.make_root(tmp_path / "musdb", standard + others, ["Test - Song"], MUSDB, seconds=0.05)
    idx = index(root, sources=MUSDB)
    assert [t.name for t in idx.tracks("valid")] == sorted(standard)
    assert [t.name for t in idx.tracks("train")] == others
    assert all(t.split == "valid" for t in idx.tracks("valid"))


def test_missing_validation_track_is_named(plain_root: Path) -> None:
    with pytest.raises(DatasetError) as err:
        index(plain_root, sources=MUSDB, valid_tracks=["a", "Ghost - Track"]).tracks("train")
    assert "validation tracks ['Ghost - Track'] are not in" in str(err.value)
    # The musdb default on a root without those tracks: names them and says how to opt out.
    with pytest.raises(DatasetError) as err:
        index(plain_root, sources=MUSDB).tracks("train")
    assert "Actions - One Minute Smile" in str(err.value) and "valid_tracks=null" in str(err.value)


# --------------------------------------------------------------------------------------------- errors
def test_missing_root_says_how_to_get_data(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError) as err:
        index(missing).tracks("train")
    msg = str(err.value)
    assert str(missing) in msg and "3338373" in msg and "MUSDB_ROOT" in msg and "mb-data chorales" in msg
    with pytest.raises(DatasetError, match="no dataset root"):
        index("").tracks("train")


def test_empty_root_describes_layout(tmp_path: Path) -> None:
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DatasetError) as err:
        index(tmp_path / "empty").tracks("train")
    assert str(tmp_path / "empty") in str(err.value) and "mixture" in str(err.value)


def test_missing_source_file_names_track_and_file(plain_root: Path) -> None:
    (plain_root / "train" / "b" / "vocals.wav").unlink()
    with pytest.raises(DatasetError) as err:
        index(plain_root, sources=MUSDB, valid_tracks=None).tracks("train")
    assert "'b'" in str(err.value) and "vocals.wav" in str(err.value)


def test_corrupt_file_names_track_and_file(plain_root: Path) -> None:
    bad = plain_root / "test" / "t2" / "drums.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage, not a wav file" * 10)
    with pytest.raises(DatasetError) as err:
        index(plain_root, sources=MUSDB, valid_tracks=None).tracks("test")
    assert "'t2'" in str(err.value) and str(bad) in str(err.value)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("length", "different lengths"),
        ("channels", "different channel counts"),
        ("rate", "different sample rates"),
    ],
)
def test_inconsistent_stems_name_track_and_values(plain_root: Path, change: str, words: str) -> None:
    path = plain_root / "train" / "a" / "bass.wav"
    frames = {"length": SR // 2, "channels": SR, "rate": SR}[change]
    audio = np.zeros((frames, 1 if change == "channels" else 2))
    sf.write(path, audio, 16000 if change == "rate" else SR, subtype="FLOAT")
    with pytest.raises(DatasetError) as err:
        index(plain_root, sources=MUSDB, valid_tracks=None).tracks("train")
    msg = str(err.value)
    assert words in msg and "'a'" in msg and "bass.wav" in msg


def test_configured_rate_mismatch_is_an_error(plain_root: Path) -> None:
    with pytest.raises(DatasetError) as err:
        MusdbIndex(plain_root, MUSDB, sample_rate=44100, valid_tracks=None).tracks("train")
    assert "8000 Hz" in str(err.value) and "44100 Hz" in str(err.value) and "'a'" in str(err.value)


def test_manifest_sources_mismatch_lists_both(chorale_root: Path) -> None:
    with pytest.raises(DatasetError) as err:
        index(chorale_root, sources=MUSDB).tracks("train")
    msg = str(err.value)
    assert "manifest.json" in msg and "soprano" in msg and "vocals" in msg


def test_bad_arguments_name_the_config_node(plain_root: Path) -> None:
    """Errors name the keys of the node the index is built from (``data.source`` on its own)."""
    with pytest.raises(ValueError, match=r"data\.source\.fmt"):
        index(plain_root, fmt="flac")
    with pytest.raises(ValueError, match=r"data\.source\.sources"):
        index(plain_root, sources=["vocals", "mixture"])
    with pytest.raises(ValueError, match=r"data\.valid_tracks"):
        index(plain_root, valid_tracks="all", config_key="data")
