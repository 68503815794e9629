"""Hi-res MP3 pairs: clean audio at the target rate, the MP3 made at 44.1 kHz and resampled back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicbench.audio.mp3 import Mp3Codec
from musicbench.data.index import FolderIndex
from musicbench.data.mp3_cache import degrade, entry_key
from musicbench.data.mp3_pairs import Mp3PairsDataModule
from musicbench.errors import ConfigError

from .test_mp3_pairs import chorale_dm

CODEC_RATE = 44100


def band_db(audio: np.ndarray, rate: int, lo: float, hi: float) -> float:
    """Energy of ``audio`` (C, T) between ``lo`` and ``hi`` Hz relative to its total energy, in dB."""
    power = np.abs(np.fft.rfft(audio * np.hanning(audio.shape[-1]), axis=-1)) ** 2  # no edge leakage
    freqs = np.fft.rfftfreq(audio.shape[-1], 1 / rate)
    band = power[..., (freqs >= lo) & (freqs < hi)].sum()
    return float(10 * np.log10(band / power.sum() + 1e-30))


def hires_dm(root, cache, target_rate, **kwargs) -> Mp3PairsDataModule:
    codec = Mp3Codec(bitrate=128)
    return chorale_dm(root, cache, codec=codec, target_rate=target_rate, chunk_seconds=0.5, **kwargs)


def test_pairs_are_at_the_target_rate_and_the_input_holds_only_the_mp3_band(
    tiny_hires_chorales_root, tmp_path
):
    dm = hires_dm(tiny_hires_chorales_root, tmp_path, 88200)
    assert (dm.sample_rate, dm.target_rate, dm.codec_rate) == (88200, 88200, CODEC_RATE)
    track = dm.tracks("test")[0]
    degraded, clean = track.load()
    assert track.sample_rate == 88200 and degraded.shape == clean[0].shape == (2, track.num_frames)
    d, c = degraded.numpy(), clean[0].numpy()
    # The rendered chorales have weak but real content above 22.05 kHz; the MP3 side has none (only the
    # resampler's stop band, > 100 dB down) and keeps the band below LAME's 128-kbit/s low-pass.
    assert band_db(c, 88200, 23000, 44100) > -95
    assert band_db(d, 88200, 23000, 44100) < band_db(c, 88200, 23000, 44100) - 30
    assert band_db(d, 88200, 17500, 44100) < -90
    low = slice(None)
    err = d[low] - c[low]
    assert 10 * np.log10((c**2).sum() / (err**2).sum()) > 15  # aligned: the MP3 matches the clean audio


def test_training_chunks_and_validation_segments_use_the_target_rate(tiny_hires_chorales_root, tmp_path):
    dm = hires_dm(tiny_hires_chorales_root, tmp_path, 88200)
    dm.setup("fit")
    degraded, clean = next(iter(dm.train_dataloader()))
    assert degraded.shape == (2, 2, 44100) and clean.shape == (2, 1, 2, 44100)  # 0.5 s at 88.2 kHz
    degraded, clean = next(iter(dm.val_dataloader()))
    assert degraded.shape[-1] == 88200


def test_on_the_fly_chunks_follow_the_same_chain(tiny_hires_chorales_root, tmp_path):
    dm = hires_dm(tiny_hires_chorales_root, tmp_path, 88200, bitrates=[64, 128])
    dm.setup("fit")
    degraded, clean = dm.train_set[0]
    assert degraded.shape == clean[0].shape == (2, 44100)
    d, c = degraded.numpy(), clean[0].numpy()
    assert band_db(d, 88200, 23000, 44100) < -100 and band_db(c, 88200, 23000, 44100) > -95


def test_non_integer_ratio_96k_is_sample_aligned(tmp_path):
    """96 kHz / 44.1 kHz = 320 / 147: the round trip must stay aligned to the sample."""
    rate = 96000
    t = np.arange(rate) / rate
    rng = np.random.default_rng(0)
    clean = np.stack([0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(rate)] * 2).astype(
        np.float32
    )
    degraded = degrade(clean, Mp3Codec(bitrate=192), CODEC_RATE, rate)
    assert degraded.shape == clean.shape
    # Cross-correlation of the 440-Hz band-limited parts peaks at lag 0.
    x, y = clean[0, 4800:-4800], degraded[0, 4800:-4800]
    lags = range(-5, 6)
    corr = [float(np.dot(x[5:-5], np.roll(y, lag)[5:-5])) for lag in lags]
    assert list(lags)[int(np.argmax(corr))] == 0
    assert band_db(degraded, rate, 22500, 48000) < -100


def test_folder_files_are_resampled_to_the_target_rate(tmp_path, layout):
    layout.write_tone(tmp_path / "m" / "x.flac", seconds=0.5, sr=44100)
    dm = Mp3PairsDataModule(
        FolderIndex(tmp_path / "m", 0.0, 0.0),
        Mp3Codec(bitrate=128),
        target_rate=96000,
        cache_dir=tmp_path / "c",
        prepare_workers=0,
        chunk_seconds=0.25,
        progress=False,
    )
    (track,) = dm.tracks("train")
    assert track.sample_rate == 96000 and track.num_frames == 48000


def test_target_rate_below_the_mp3_rate_is_refused(tiny_hires_chorales_root, tmp_path):
    with pytest.raises(ConfigError, match=r"data.target_rate=22050 is below data.sample_rate=44100"):
        hires_dm(tiny_hires_chorales_root, tmp_path, 22050)


def test_cache_keys_of_same_rate_pairs_are_unchanged_and_hires_keys_differ():
    codec = Mp3Codec(bitrate=128)
    same = entry_key("abc", codec, 44100)
    assert entry_key("abc", codec, 44100, 44100) == same
    assert entry_key("abc", codec, 44100, 88200) not in (same, entry_key("abc", codec, 44100, 96000))


def test_degrade_keeps_length_and_dtype():
    clean = torch.randn(2, 8820, generator=torch.Generator().manual_seed(0)).numpy() * 0.1
    out = degrade(clean, Mp3Codec(bitrate=128), CODEC_RATE, 88200)
    assert out.shape == clean.shape and out.dtype == np.float32
