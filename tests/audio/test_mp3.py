"""The MP3 round trip: sample alignment (cross-correlation at lag 0), lengths, settings validation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from musicbench.audio.mp3 import CODEC_DELAY, CodecError, Mp3Codec, decode_mp3, valid_bitrates


def clean_signal(sample_rate: int, seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """Stereo low-passed noise (distinct per channel) plus a tone: broadband enough for a sharp xcorr peak."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    b, a = scipy.signal.butter(4, 2000 / (sample_rate / 2))
    noise = scipy.signal.lfilter(b, a, rng.standard_normal((2, n)), axis=-1)
    tone = np.sin(2 * np.pi * 330.0 * np.arange(n) / sample_rate)
    return (0.3 * noise / np.abs(noise).max() + 0.1 * tone).astype(np.float32)


def xcorr_lag(clean: np.ndarray, degraded: np.ndarray) -> int:
    """The lag (samples) of the cross-correlation peak of two mono signals; > 0: degraded is late."""
    corr = scipy.signal.correlate(degraded, clean, mode="full", method="fft")
    lags = scipy.signal.correlation_lags(len(degraded), len(clean), mode="full")
    return int(lags[np.argmax(corr)])


@pytest.mark.parametrize("sample_rate", [44100, 22050, 48000])
@pytest.mark.parametrize("bitrate", [16, 32, 64, 128])
def test_round_trip_is_aligned_and_same_length(sample_rate, bitrate):
    clean = clean_signal(sample_rate)
    degraded = Mp3Codec(bitrate=bitrate)(clean, sample_rate)
    assert isinstance(degraded, torch.Tensor) and degraded.dtype == torch.float32
    assert tuple(degraded.shape) == clean.shape
    for ch in range(2):
        assert xcorr_lag(clean[ch], degraded[ch].numpy()) == 0, (bitrate, sample_rate, ch)
    # It is the signal, not noise that happens to peak at 0: the decoded audio correlates strongly.
    rho = np.corrcoef(clean[0], degraded[0].numpy())[0, 1]
    assert rho > 0.5


@pytest.mark.parametrize("codec", [Mp3Codec(bitrate=None, vbr_quality=4), Mp3Codec(bitrate=32, channels=1)])
def test_vbr_and_mono_are_aligned(codec):
    clean = clean_signal(44100, seconds=3.0)
    degraded = codec(clean, 44100)
    ref = clean if codec.channels == 2 else clean.mean(0, keepdims=True)
    assert tuple(degraded.shape) == ref.shape
    assert xcorr_lag(ref[0], degraded[0].numpy()) == 0


def test_decoder_returns_the_whole_vbr_stream():
    # libsndfile's own length estimate of a tagless VBR stream is too short; the decoder must not stop there.
    clean = clean_signal(44100, seconds=4.0)
    data = Mp3Codec(bitrate=None, vbr_quality=2).encode(clean, 44100)
    decoded, rate = decode_mp3(data)
    assert rate == 44100 and decoded.shape[-1] >= clean.shape[-1] + CODEC_DELAY


def test_low_bitrate_removes_high_frequencies():
    rng = np.random.default_rng(1)
    clean = (0.1 * rng.standard_normal((2, 44100))).astype(np.float32)
    degraded = Mp3Codec(bitrate=32)(clean, 44100).numpy()
    f, p_clean = scipy.signal.welch(clean[0], 44100, nperseg=2048)
    _, p_deg = scipy.signal.welch(degraded[0], 44100, nperseg=2048)
    high = f > 12000  # 32 kbit/s stereo is encoded at 16 kHz: nothing above 8 kHz survives
    assert p_deg[high].mean() < 1e-3 * p_clean[high].mean()


def test_unsupported_bitrate_names_valid_ones():
    with pytest.raises(CodecError, match=r"bitrate 33 kbit/s .* 44100 Hz; valid: \[8, 16"):
        Mp3Codec(bitrate=33).encode(np.zeros((2, 100), np.float32), 44100)
    # 320 kbit/s exists only in MPEG-1 (>= 32 kHz): LAME would silently clamp it at 16 kHz.
    assert 320 in valid_bitrates(44100) and 320 not in valid_bitrates(16000)
    with pytest.raises(CodecError, match="320 kbit/s"):
        Mp3Codec(bitrate=320).check(16000)


def test_unsupported_sample_rate_names_valid_ones():
    with pytest.raises(CodecError, match=r"44000 Hz .* supported: \[8000, 11025"):
        Mp3Codec(bitrate=64).check(44000)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(bitrate=None), "exactly one"),
        (dict(bitrate=32, vbr_quality=2), "exactly one"),
        (dict(bitrate=None, vbr_quality=11), "vbr_quality"),
        (dict(quality=12), "quality"),
        (dict(channels=3), "channels"),
    ],
)
def test_bad_settings_are_rejected(kwargs, match):
    with pytest.raises(CodecError, match=match):
        Mp3Codec(**kwargs)


def test_params_and_name_change_with_every_setting():
    base = Mp3Codec()
    others = [base.with_bitrate(64), Mp3Codec(quality=5), Mp3Codec(channels=1), Mp3Codec(None, 3)]
    keys = {str(sorted(c.params().items())) for c in [base, *others]}
    assert len(keys) == 5 and len({c.name for c in [base, *others]}) == 5


def test_audio_beyond_full_scale_is_refused_not_clipped():
    loud = np.full((2, 4410), 1.5, dtype=np.float32)
    with pytest.raises(CodecError, match="peaks at 1.5"):
        Mp3Codec(bitrate=128).encode(loud, 44100)
