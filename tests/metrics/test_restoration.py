"""Restoration metrics: LSD against a direct numpy/scipy computation, bands, batching, improvement."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from musicbench.metrics.restoration import improvement, log_spectral_distance, si_sdr, snr

SR = 16000


def lsd_numpy(ref, est, sr, n_fft, hop, min_freq=0.0, max_freq=None, floor=1e-10):
    """LSD of one (channels, samples) pair, written out directly: reflect-pad, frame, Hann, rfft."""
    window = scipy.signal.get_window("hann", n_fft)  # periodic, as torch.hann_window
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    band = (freqs >= min_freq) & (freqs <= (sr / 2 if max_freq is None else max_freq))
    per_channel = []
    for r, e in zip(ref, est, strict=True):
        logs = []
        for x in (r, e):
            x = np.pad(x, n_fft // 2, mode="reflect")
            frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
            power = np.abs(np.fft.rfft(frames * window, axis=-1)[:, band] / window.sum()) ** 2
            logs.append(10 * np.log10(power + floor))
        per_channel.append(np.sqrt(np.mean((logs[0] - logs[1]) ** 2, axis=-1)))
    return np.mean(per_channel, axis=0)  # per frame


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, SR)) * 0.1
    b, a = scipy.signal.butter(6, 3000 / (SR / 2))
    est = scipy.signal.lfilter(b, a, ref, axis=-1) + 1e-3 * rng.standard_normal((2, SR))
    return ref, est


@pytest.mark.parametrize("min_freq,max_freq", [(0.0, None), (3500.0, None), (500.0, 2000.0)])
def test_lsd_matches_a_direct_computation(pair, min_freq, max_freq):
    ref, est = pair
    expected = lsd_numpy(ref, est, SR, 512, 128, min_freq, max_freq)
    kwargs = dict(sample_rate=SR, n_fft=512, hop_length=128, min_freq=min_freq, max_freq=max_freq)
    frames = log_spectral_distance(torch.from_numpy(ref), torch.from_numpy(est), framewise=True, **kwargs)
    np.testing.assert_allclose(frames.numpy(), expected, rtol=1e-9, atol=1e-9)
    total = log_spectral_distance(torch.from_numpy(ref), torch.from_numpy(est), **kwargs)
    assert float(total) == pytest.approx(expected.mean(), rel=1e-9)


def test_high_band_lsd_sees_the_lowpass(pair):
    ref, est = (torch.from_numpy(x) for x in pair)
    low = log_spectral_distance(ref, est, SR, max_freq=2000.0)
    high = log_spectral_distance(ref, est, SR, min_freq=4000.0)
    assert high > 5 * low  # the low-pass removed the band above 3 kHz, and kept the band below
    assert float(log_spectral_distance(ref, ref, SR)) == 0.0


def test_lsd_floor_is_in_db_full_scale():
    # A full-scale sine peaks at -6 dBFS per bin: an estimate of silence differs by about 94 dB there with
    # the -100 dB floor, and a deeper floor makes the distance to silence larger.
    t = torch.arange(SR, dtype=torch.float64) / SR
    sine = torch.sin(2 * torch.pi * 1000.0 * t)[None]
    silence = torch.zeros_like(sine)
    kwargs = dict(sample_rate=SR, n_fft=512, hop_length=128, min_freq=990.0, max_freq=1010.0)
    assert float(log_spectral_distance(sine, silence, **kwargs)) == pytest.approx(94.0, abs=0.5)
    assert log_spectral_distance(sine, silence, floor_db=-120.0, **kwargs) > 110.0


def test_lsd_is_batched_over_leading_dims(pair):
    ref, est = (torch.from_numpy(x).float() for x in pair)
    batch_ref, batch_est = torch.stack([ref, ref, est]), torch.stack([est, ref, ref])
    out = log_spectral_distance(batch_ref[None], batch_est[None], SR)
    assert out.shape == (1, 3) and out.dtype == torch.float64
    single = log_spectral_distance(ref, est, SR)
    assert out[0, 0] == pytest.approx(float(single)) and out[0, 1] == 0.0


def test_lsd_rejects_empty_band_and_mismatched_shapes(pair):
    ref, est = (torch.from_numpy(x) for x in pair)
    with pytest.raises(ValueError, match=r"no STFT bin in \[9000.0"):
        log_spectral_distance(ref, est, SR, min_freq=9000.0)
    with pytest.raises(ValueError, match="one shape"):
        log_spectral_distance(ref, est[:1], SR)


def test_improvement_is_the_difference_to_the_degraded_input(pair):
    ref, deg = (torch.from_numpy(x) for x in pair)
    est = 0.5 * (ref + deg)  # halfway back to the reference
    for metric in (snr, si_sdr):
        imp = improvement(metric, ref, est, deg)
        assert imp == pytest.approx(float(metric(ref, est) - metric(ref, deg))) and imp > 0
    assert improvement(lambda r, e: log_spectral_distance(r, e, SR), ref, ref, deg) < 0
    assert improvement(snr, ref, deg, deg) == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(pair):
    ref, est = (torch.from_numpy(a) for a in pair)
    degraded = 0.5 * est
    kwargs = dict(sample_rate=SR, n_fft=512, hop_length=128, min_freq=500.0)
    for framewise in (False, True):
        cpu = log_spectral_distance(ref, est, framewise=framewise, **kwargs)
        gpu = log_spectral_distance(ref.cuda(), est.cuda(), framewise=framewise, **kwargs)
        assert gpu.is_cuda and gpu.shape == cpu.shape
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-9)
    for metric in (snr, si_sdr):
        gpu = improvement(metric, ref.cuda(), est.cuda(), degraded.cuda())
        assert gpu.is_cuda
        torch.testing.assert_close(gpu.cpu(), improvement(metric, ref, est, degraded), rtol=1e-10, atol=1e-10)
