import numpy as np
import pytest
import torch
from clarity.enhancer.nalr import NALR as ClarityNALR
from clarity.utils.audiogram import Audiogram as ClarityAudiogram

from musicbench.hearing.audiogram import DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES, Audiogram
from musicbench.hearing.nalr import NALR, apply_nalr, nalr_delay, nalr_fir

CFS = list(DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES)
# (left, right) thresholds in dB HL at CFS. "severe" exceeds the 180 dB summed loss at 500 Hz - 2 kHz
# where NAL-R switches formula; "negative" has no loss (pure delay); "tiny" has just enough.
AUDIOGRAMS = {
    "normal": [0, 0, 0, 0, 0, 0, 0, 0],
    "negative": [-5, -10, 0, -5, 0, -5, -10, -5],
    "tiny": [0, 0, 0, 0.5, 0, 0, 0, 0],
    "mild": [10, 15, 20, 25, 30, 30, 35, 40],
    "moderate": [30, 35, 40, 45, 50, 55, 60, 65],
    "severe": [60, 70, 80, 90, 90, 95, 100, 105],
    "sloping": [5, 5, 10, 20, 40, 60, 70, 80],
    "asymmetric_left": [10, 10, 15, 20, 25, 30, 30, 35],
    "asymmetric_right": [40, 50, 55, 65, 70, 75, 80, 85],
}
SAMPLE_RATES = [24000, 32000, 44100]


def _rel_err(ours: torch.Tensor, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(ours.cpu().numpy() - theirs)) / np.max(np.abs(theirs)))


def _reference_firs(nfir, sample_rate, cfs=CFS, audiograms=AUDIOGRAMS):
    nalr = ClarityNALR(nfir, sample_rate)
    out = [
        nalr.build(ClarityAudiogram(levels=np.array(v, float), frequencies=np.array(cfs)))
        for v in audiograms.values()
    ]
    return np.stack([fir for fir, _ in out]), out[0][1]


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
@pytest.mark.parametrize("nfir", [220, 140, 101, 600])
def test_batched_fir_matches_pyclarity(sample_rate, nfir):
    expected, expected_delay = _reference_firs(nfir, sample_rate)
    levels = torch.tensor(list(AUDIOGRAMS.values()), dtype=torch.float64)
    fir, delay = nalr_fir(levels, CFS, nfir=nfir, sample_rate=sample_rate)
    assert fir.shape == (len(AUDIOGRAMS), nfir + 1) and fir.dtype == torch.float64
    for k in range(len(AUDIOGRAMS)):
        assert _rel_err(fir[k], expected[k]) <= 1e-6
    np.testing.assert_array_equal(delay.numpy(), expected_delay)
    # No loss gives exactly the delay, as in pyclarity.
    names = list(AUDIOGRAMS)
    for name in ("normal", "negative"):
        np.testing.assert_array_equal(fir[names.index(name)].numpy(), expected_delay)
    assert not torch.equal(fir[names.index("tiny")], delay)


def test_audiogram_inputs_and_class_interface_match_pyclarity():
    # Audiograms with their own frequencies, including ones that need extrapolation to 6 kHz.
    audiograms = [
        Audiogram(levels=[20, 30, 45, 60], frequencies=[500, 1000, 2000, 4000]),
        Audiogram(levels=AUDIOGRAMS["sloping"], frequencies=CFS),
        Audiogram(levels=[15, 20, 25, 35, 50, 60], frequencies=[250, 500, 1000, 2000, 4000, 6000]),
    ]
    nalr = NALR(nfir=220, sample_rate=44100)
    batch, delay = nalr.build(audiograms)
    assert batch.shape == (3, 221)
    reference = ClarityNALR(220, 44100)
    for k, a in enumerate(audiograms):
        expected, expected_delay = reference.build(
            ClarityAudiogram(levels=a.levels, frequencies=a.frequencies)
        )
        single, _ = nalr.build(a)
        assert single.shape == (221,)
        assert _rel_err(single, expected) <= 1e-6
        assert _rel_err(batch[k], expected) <= 1e-6
        np.testing.assert_array_equal(delay.numpy(), expected_delay)
    np.testing.assert_array_equal(nalr.delay.numpy(), reference.delay)


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
def test_apply_matches_pyclarity_convolution(sample_rate):
    nalr = ClarityNALR(220, sample_rate)
    g = np.random.default_rng(0)
    # Music-like: harmonics with a loud and a quiet passage, plus noise; half a second.
    t = np.arange(sample_rate // 2) / sample_rate
    signal = (
        np.where(t < 0.25, 0.8, 0.01) * np.sin(2 * np.pi * 220 * t * (1 + 0.1 * t))
    ) + 0.01 * g.standard_normal(len(t))
    fir, _ = nalr.build(
        ClarityAudiogram(levels=np.array(AUDIOGRAMS["moderate"], float), frequencies=np.array(CFS))
    )
    expected = nalr.apply(fir, signal)
    ours = NALR(220, sample_rate).apply(torch.from_numpy(fir), torch.from_numpy(signal))
    assert ours.shape == expected.shape == (len(signal) + 220,)
    assert _rel_err(ours, expected) <= 1e-6


def test_apply_is_batched_over_listeners_and_channels():
    g = torch.Generator().manual_seed(0)
    signal = torch.randn(3, 2, 4000, generator=g, dtype=torch.float64)  # (batch, channels, samples)
    levels = torch.tensor(
        [AUDIOGRAMS["mild"], AUDIOGRAMS["severe"], AUDIOGRAMS["asymmetric_right"]], dtype=torch.float64
    )
    fir, _ = nalr_fir(levels, CFS, nfir=220, sample_rate=24000)
    out = apply_nalr(fir[:, None, :], signal)
    assert out.shape == (3, 2, 4220)
    for b in range(3):
        for c in range(2):
            expected = np.convolve(signal[b, c].numpy(), fir[b].numpy())
            assert _rel_err(out[b, c], expected) <= 1e-6
    # Per-ear filters: a (channels, taps) filter bank for a (channels, samples) signal.
    ears = apply_nalr(fir[:2], signal[0])
    assert _rel_err(ears[1], np.convolve(signal[0, 1].numpy(), fir[1].numpy())) <= 1e-6


def test_apply_delay_compensation_and_dtypes():
    delay = nalr_delay(220)
    signal = torch.randn(2, 1000, dtype=torch.float32)
    full = apply_nalr(delay, signal)
    assert full.dtype == torch.float64 and full.shape == (2, 1220)
    aligned = apply_nalr(delay, signal, compensate_delay=True)
    assert aligned.shape == (2, 1000)
    torch.testing.assert_close(aligned, signal.double(), atol=1e-12, rtol=0)
    fir32, _ = nalr_fir(torch.tensor(AUDIOGRAMS["mild"]), CFS, dtype=torch.float32)
    assert fir32.dtype == torch.float32 and apply_nalr(fir32, signal).dtype == torch.float32


def test_errors_are_clear():
    levels = torch.tensor(AUDIOGRAMS["mild"], dtype=torch.float64)
    with pytest.raises(ValueError, match="nfir must be a positive integer"):
        nalr_fir(levels, CFS, nfir=0)
    with pytest.raises(ValueError, match="sample_rate must exceed 12000 Hz"):
        nalr_fir(levels, CFS, sample_rate=12000)
    with pytest.raises(ValueError, match="cfs .* is required"):
        nalr_fir(levels)
    with pytest.raises(ValueError, match="last dimension must match"):
        nalr_fir(levels[:5], CFS)
    with pytest.raises(ValueError, match="cfs must be None"):
        nalr_fir(Audiogram(levels=AUDIOGRAMS["mild"], frequencies=CFS), CFS)
    with pytest.raises(TypeError, match="non-empty sequence"):
        nalr_fir([])
    with pytest.raises(ValueError, match="must not be empty"):
        apply_nalr(nalr_delay(4), torch.zeros(2, 0))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    levels = torch.tensor(list(AUDIOGRAMS.values()), dtype=torch.float64)
    fir_cpu, _ = nalr_fir(levels, CFS, sample_rate=44100)
    fir_gpu, delay = nalr_fir(levels.cuda(), CFS, sample_rate=44100)
    assert fir_gpu.is_cuda and delay.is_cuda
    torch.testing.assert_close(fir_gpu.cpu(), fir_cpu, rtol=1e-12, atol=1e-12)
    signal = torch.randn(len(AUDIOGRAMS), 2, 5000, dtype=torch.float64)
    torch.testing.assert_close(
        apply_nalr(fir_gpu[:, None], signal.cuda()).cpu(),
        apply_nalr(fir_cpu[:, None], signal),
        rtol=1e-10,
        atol=1e-10,
    )
