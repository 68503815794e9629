import numpy as np
import pytest
import torch
from clarity.enhancer.compressor import Compressor as ClarityCompressor

from musicbench.hearing.compressor import Compressor, compress, linear_recurrence, moving_rms

# Parameter sets: pyclarity's defaults; the CAD1 task 1 / ICASSP 2024 / CEC2 baseline (recipes' config.yaml);
# the CAD1 task 2 baseline; and other rates with makeup gain.
PARAMETER_SETS = {
    "defaults": dict(sample_rate=44100),
    "cad1_task1": dict(
        sample_rate=44100, threshold=0.35, attenuation=0.1, attack=50, release=1000, rms_buffer_size=0.064
    ),
    "cad1_task2": dict(
        sample_rate=44100, threshold=0.7, attenuation=0.1, attack=5, release=20, rms_buffer_size=0.064
    ),
    "32k_makeup": dict(
        sample_rate=32000,
        threshold=0.2,
        attenuation=0.3,
        attack=10,
        release=100,
        rms_buffer_size=0.05,
        makeup_gain=2.0,
    ),
    "24k_long_window": dict(
        sample_rate=24000,
        threshold=0.5,
        attenuation=0.0001,
        attack=2,
        release=300,
        rms_buffer_size=0.25,
        makeup_gain=0.7,
    ),
}


def _music_like(sample_rate: int, seconds: float, seed: int, peak: float = 2.5) -> np.ndarray:
    """Harmonic notes with vibrato and an envelope alternating loud, quiet and silent passages, plus noise."""
    g = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 110 * 2 ** (g.integers(0, 24) / 12)
    tone = sum(np.sin(2 * np.pi * k * f0 * t + 0.5 * np.sin(2 * np.pi * 5 * t)) / k for k in range(1, 6))
    section = (t * 4).astype(int) % 4  # 250-ms sections: loud, quiet, very loud, silent
    envelope = np.choose(section, [0.4 * peak, 0.02, peak, 0.0]) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    return envelope * tone / 2.3 + 0.003 * g.standard_normal(len(t))


def _rel_err(ours: torch.Tensor, theirs) -> float:
    theirs = np.asarray(theirs)
    return float(np.max(np.abs(ours.numpy() - theirs)) / np.max(np.abs(theirs)))


@pytest.mark.parametrize("name", list(PARAMETER_SETS))
def test_matches_pyclarity(name):
    params = dict(PARAMETER_SETS[name])
    sample_rate = params.pop("sample_rate")
    # pyclarity's default threshold (RMS 1) over a 200-ms window needs a louder signal than the recipes'.
    signal = _music_like(sample_rate, 1.5, seed=len(name), peak=8.0 if name == "defaults" else 2.5)
    expected, expected_rms, expected_gain = ClarityCompressor(fs=sample_rate, **params).process(signal)
    compressor = Compressor(sample_rate=sample_rate, **params)
    output, rms, gain = compressor.process(torch.from_numpy(signal))
    # Both branches of the recursion are exercised.
    above = np.mean(expected_rms > params.get("threshold", 1.0))
    assert 0.1 < above < 0.9, above
    assert output.shape == rms.shape == gain.shape == signal.shape
    assert _rel_err(output, expected) <= 1e-6
    assert _rel_err(rms, expected_rms) <= 1e-6
    assert _rel_err(gain, expected_gain) <= 1e-6
    assert compressor.window == ClarityCompressor(fs=sample_rate, **params).win_len


def test_batched_matches_pyclarity_per_row():
    params = PARAMETER_SETS["cad1_task2"]
    signals = np.stack([_music_like(44100, 0.6, seed=s, peak=1.5 + s) for s in range(4)]).reshape(2, 2, -1)
    output, rms, gain = compress(torch.from_numpy(signals), **params)
    assert output.shape == (2, 2, signals.shape[-1])
    reference_params = {k: v for k, v in params.items() if k != "sample_rate"}
    for b in range(2):
        for c in range(2):
            expected, _, expected_gain = ClarityCompressor(fs=44100, **reference_params).process(
                signals[b, c]
            )
            assert _rel_err(output[b, c], expected) <= 1e-6
            assert _rel_err(gain[b, c], expected_gain) <= 1e-6


def test_float32_input_and_dtype():
    signal = torch.from_numpy(_music_like(24000, 0.3, seed=1)).float()
    output, rms, gain = Compressor(sample_rate=24000, threshold=0.5).process(signal)
    assert output.dtype == rms.dtype == gain.dtype == torch.float64
    output32, _, _ = Compressor(sample_rate=24000, threshold=0.5).process(signal, dtype=torch.float32)
    assert output32.dtype == torch.float32
    torch.testing.assert_close(output32.double(), output, rtol=1e-4, atol=1e-5)


def test_linear_recurrence_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 1000, generator=g, dtype=torch.float64) * 1.2 - 0.1  # includes |a| > 1 and a < 0
    a = a.clamp(max=1.02)
    b = torch.randn(3, 1000, generator=g, dtype=torch.float64)
    initial = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64)
    expected = torch.empty_like(b)
    state = initial.clone()
    for n in range(a.shape[-1]):
        state = a[:, n] * state + b[:, n]
        expected[:, n] = state
    # Several block sizes: one block, two levels, and a deep recursion with padding.
    for block_size in (4096, 64, 3):
        out = linear_recurrence(a, b, initial=initial, block_size=block_size)
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="same shape"):
        linear_recurrence(a, b[:, :10])


def test_moving_rms_matches_convolution_and_keeps_quiet_passages_precise():
    g = np.random.default_rng(0)
    # A very loud second followed by a very quiet one: a difference of running totals would lose
    # all precision in the quiet part; the blocked sums must not.
    x = np.concatenate((1e3 * g.standard_normal(8000), 1e-4 * g.standard_normal(8000)))
    # Windows of 1 sample, shorter than a passage, and longer than the whole (short) signal.
    for window, signal in ((1, x), (7, x), (441, x), (2000, x), (3000, x[7000:9000])):
        padded = np.concatenate((np.zeros(window - 1), signal))
        expected = np.sqrt(np.convolve(padded**2, np.ones(window), mode="valid") / window)
        ours = moving_rms(torch.from_numpy(signal), window, eps=0.0).numpy()
        np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=0)
    with pytest.raises(ValueError, match="at least 1 sample"):
        moving_rms(torch.from_numpy(x), 0)


def test_parameter_errors():
    with pytest.raises(ValueError, match="attack must be a positive time in ms"):
        Compressor(attack=0)
    with pytest.raises(ValueError, match="release must be a positive time in ms"):
        Compressor(release=-1)
    with pytest.raises(ValueError, match="the RMS window needs at least 1"):
        Compressor(sample_rate=8000, rms_buffer_size=1e-5)
    with pytest.raises(ValueError, match="threshold must be finite"):
        Compressor(threshold=float("nan"))
    with pytest.raises(ValueError, match="samples dimension"):
        Compressor().process(torch.tensor(1.0))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    signal = torch.from_numpy(np.stack([_music_like(44100, 1.0, seed=s) for s in range(4)]))
    cpu = compress(signal, **PARAMETER_SETS["cad1_task2"])
    gpu = compress(signal.cuda(), **PARAMETER_SETS["cad1_task2"])
    for ours, reference in zip(gpu, cpu, strict=True):
        assert ours.is_cuda
        torch.testing.assert_close(ours.cpu(), reference, rtol=1e-10, atol=1e-12)
