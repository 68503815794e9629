"""Tracks: chunked reads of a MUSDB18-layout track, single audio files, the files behind each stem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from musicbench.audio.io import AudioFileError
from musicbench.data.musdb_index import MusdbIndex
from musicbench.data.tracks import AudioFile, DatasetError, fit_length

SR = 8000
SATB = ["soprano", "alto", "tenor", "bass"]


def test_track_load_reads_the_requested_frames(chorale_root: Path) -> None:
    track = MusdbIndex(chorale_root, SATB, SR).tracks("train")[0]
    mixture, targets = track.load(frame_offset=1000, num_frames=500)
    assert mixture.shape == (2, 500) and targets.shape == (4, 2, 500)
    ref = sf.read(track.path / "tenor.wav", dtype="float32", always_2d=True)[0].T
    np.testing.assert_array_equal(targets[2].numpy(), ref[:, 1000:1500])
    # Reading past the end returns what is there (the datasets pad).
    assert track.load(frame_offset=SR - 100, num_frames=500)[0].shape == (2, 100)


def test_track_stems_and_their_files(chorale_root: Path) -> None:
    track = MusdbIndex(chorale_root, SATB, SR).tracks("test")[0]
    assert track.stems == ("mixture", *SATB)
    assert track.stem_path("alto") == track.path / "alto.wav"
    np.testing.assert_array_equal(track.load_stem("alto").numpy(), track.load()[1][1].numpy())
    with pytest.raises(ValueError, match="has no 'piano'"):
        track.stem_path("piano")


def test_audio_file_is_a_track_whose_only_stem_is_the_mixture(tmp_path: Path) -> None:
    path = tmp_path / "x.flac"
    audio = np.stack([np.linspace(-0.5, 0.5, 1000), np.zeros(1000)])
    sf.write(path, audio.T, 22050)
    track = AudioFile("x.flac", "train", path, 22050, 1000, 2)
    assert track.stems == ("mixture",) and track.stem_path() == path and track.sources == ()
    loaded = track.load_stem()
    assert loaded.shape == (2, 1000) and float(loaded[0, -1]) == pytest.approx(0.5, abs=1e-4)
    assert track.load_stem("mixture", frame_offset=900).shape == (2, 100)
    with pytest.raises(ValueError, match="single audio file"):
        track.load_stem("vocals")
    path.unlink()
    with pytest.raises(AudioFileError, match="x.flac"):
        track.load_stem()


def test_fit_length_trims_and_pads() -> None:
    import torch

    x = torch.ones(2, 5)
    assert fit_length(x, 3).shape == (2, 3)
    padded = fit_length(x, 7)
    assert padded.shape == (2, 7) and float(padded[:, 5:].abs().max()) == 0.0
    assert fit_length(x, 5) is x


def test_nonfinite_samples_are_refused_with_file_channel_and_position(chorale_root: Path) -> None:
    track = MusdbIndex(chorale_root, SATB, SR).tracks("test")[0]
    path = track.path / "tenor.wav"
    audio = sf.read(path, dtype="float32", always_2d=True)[0]
    audio[1234, 1] = np.nan
    audio[5000, 0] = np.inf
    sf.write(path, audio, SR, subtype="FLOAT")
    with pytest.raises(
        DatasetError,
        match=rf"track 't1' \(test\): audio file {path} contains NaN at channel 1, "
        r"sample 1234 \(2 non-finite values\)",
    ):
        track.load()
    # A chunk names the position in the file, not in the chunk; a chunk without the bad samples reads.
    with pytest.raises(DatasetError, match=r"contains \+inf at channel 0, sample 5000"):
        track.load(frame_offset=4000, num_frames=2000)
    assert torch.isfinite(track.load(frame_offset=2000, num_frames=2000)[1]).all()
    # The NaN/inf test is a plain read check, so every dataset (chunks, validation, test) and the MP3
    # pair cache (which reads its clean audio through the same tracks) refuse it.
    with pytest.raises(AudioFileError, match="contains NaN"):
        AudioFile("t1", "test", path, SR, 8000, 2).load_stem()


def test_nonfinite_decoded_stem_stream_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A .stem.mp4 decodes through ffmpeg; a NaN in what it returns names the stream and the position."""
    import stempeg

    from musicbench.data import tracks as tracks_module

    decoded = np.zeros((2, 800, 2), dtype=np.float32)  # (streams, samples, channels), as stempeg returns
    decoded[1, 300, 1] = np.nan
    monkeypatch.setattr(stempeg, "read_stems", lambda *args, **kwargs: (decoded, 44100))
    monkeypatch.setattr(tracks_module, "stem_info", lambda path: None)
    path = tmp_path / "song.stem.mp4"
    track = tracks_module.Track("song", "test", path, ("drums", "bass", "other", "vocals"), 44100, 10_000)
    with pytest.raises(DatasetError, match=r"stream 'drums' decodes to NaN at channel 1, sample 1300"):
        track.load_targets(1000, 800, ["vocals", "drums"])
