import numpy as np
import pytest
import torch
from scipy.signal import butter, sosfilt

from musicbench.audio.testsignals import music_like
from musicbench.hearing import butter_bandpass_sos, sos_filter


@pytest.mark.parametrize(
    ("low", "high", "sample_rate", "order"), [(250, 18500, 44100, 4), (100, 8000, 32000, 2)]
)
def test_bandpass_matches_scipy(low, high, sample_rate, order):
    sos = butter_bandpass_sos(low, high, sample_rate, order)
    expected_sos = butter(order, [low, high], btype="bandpass", fs=sample_rate, output="sos")
    assert sos.shape == (order, 6)
    np.testing.assert_array_equal(sos.numpy(), expected_sos)
    x = np.stack([music_like(0.5, sample_rate, seed=s) for s in range(3)]).reshape(3, 1, -1)
    out = sos_filter(sos, torch.from_numpy(x))
    assert out.shape == x.shape and out.dtype == torch.float64
    np.testing.assert_array_equal(out.numpy(), sosfilt(expected_sos, x, axis=-1))


def test_bandpass_passes_the_band_and_stops_outside():
    sample_rate = 44100
    sos = butter_bandpass_sos(250, 18500, sample_rate, 4)
    t = torch.arange(sample_rate, dtype=torch.float64) / sample_rate
    for freq, passes in ((1000.0, True), (50.0, False), (21000.0, False)):
        tone = torch.sin(2 * torch.pi * freq * t)
        rms = sos_filter(sos, tone)[sample_rate // 2 :].square().mean().sqrt() / tone.square().mean().sqrt()
        assert (rms > 0.95) if passes else (rms < 0.02), (freq, float(rms))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((250, 18500, 44100, 0), "order"),
        ((250, 25000, 44100, 4), "low_hz"),
        ((500, 250, 44100, 4), "low_hz"),
        ((0, 250, 44100, 4), "low_hz"),
        ((250, 18500, -1.0, 4), "sample_rate"),
    ],
)
def test_bad_design_parameters_raise(args, match):
    with pytest.raises(ValueError, match=match):
        butter_bandpass_sos(*args)


def test_bad_filter_inputs_raise():
    with pytest.raises(ValueError, match="n_sections, 6"):
        sos_filter(torch.zeros(2, 5), torch.zeros(10))
    with pytest.raises(TypeError, match="floating"):
        sos_filter(butter_bandpass_sos(250, 18500, 44100), torch.zeros(10, dtype=torch.int32))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_input_gives_the_cpu_result_on_cuda():
    sos = butter_bandpass_sos(250, 18500, 44100)
    x = torch.from_numpy(np.stack([music_like(0.25, 44100, seed=s) for s in range(2)]))
    out = sos_filter(sos.cuda(), x.float().cuda())
    assert out.is_cuda and out.dtype == torch.float64
    torch.testing.assert_close(out.cpu(), sos_filter(sos, x.float()), rtol=0, atol=0)
