"""Every metric refuses empty, non-finite or (HAAQI) invalid input with a ValueError naming the argument."""

import numpy as np
import pytest
import torch

from musicbench.hearing.audiogram import Audiogram
from musicbench.metrics.bsseval import bsseval
from musicbench.metrics.haaqi import haaqi
from musicbench.metrics.restoration import log_spectral_distance
from musicbench.metrics.sdr import global_sdr, si_sdr, snr

SR = 8000
NORMAL = [0.0] * 6


def _noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape) * 0.1)


def _with(x: torch.Tensor, index: tuple[int, ...], value: float) -> torch.Tensor:
    x = x.clone()
    x[index] = value
    return x


@pytest.mark.parametrize("metric", [global_sdr, snr, si_sdr, lambda r, e: log_spectral_distance(r, e, SR)])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_sdr_family_refuses_nonfinite(metric, value):
    ref, est = _noise(2, 2, 4000), _noise(2, 2, 4000, seed=1)
    with pytest.raises(ValueError, match=r"estimate contains (NaN|\+inf) at item 1, channel 0, sample 123"):
        metric(ref, _with(est, (1, 0, 123), value))
    with pytest.raises(ValueError, match=r"reference contains (NaN|\+inf) at item 0, channel 1, sample 7"):
        metric(_with(ref, (0, 1, 7), value), est)


@pytest.mark.parametrize("metric", [global_sdr, snr, si_sdr])
def test_sdr_family_refuses_empty(metric):
    with pytest.raises(ValueError, match="reference is empty"):
        metric(torch.zeros(1, 2, 0), torch.zeros(1, 2, 0))


def test_bsseval_refuses_nonfinite_source():
    ref, est = _noise(2, 2, 6000), _noise(2, 2, 6000, seed=1)
    with pytest.raises(ValueError, match="estimates contains NaN at source 1, channel 0, sample 4321"):
        bsseval(ref, _with(est, (1, 0, 4321), float("nan")), win=2000, hop=2000, filter_len=16)
    with pytest.raises(ValueError, match=r"references contains -inf at source 0, channel 1, sample 5"):
        bsseval(_with(ref, (0, 1, 5), -float("inf")), est, win=2000, hop=2000, filter_len=16)
    with pytest.raises(ValueError, match="references is empty"):
        bsseval(torch.zeros(2, 2, 0), torch.zeros(2, 2, 0))


@pytest.fixture(scope="module")
def pair():
    t = np.arange(SR // 2) / SR
    ref = 0.1 * np.sin(2 * np.pi * 440 * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    return torch.from_numpy(ref), torch.from_numpy(0.9 * ref)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_haaqi_refuses_nonfinite_audio(pair, backend):
    ref, proc = pair
    with pytest.raises(ValueError, match="processed contains NaN at sample 100"):
        haaqi(ref, _with(proc, (100,), float("nan")), SR, SR, NORMAL, seed=0, backend=backend)
    with pytest.raises(ValueError, match="reference contains NaN at sample 3"):
        haaqi(_with(ref, (3,), float("nan")), proc, SR, SR, NORMAL, seed=0, backend=backend)
    batch = torch.stack([proc, _with(proc, (9,), float("inf"))])
    with pytest.raises(ValueError, match=r"processed contains \+inf at item 1, sample 9"):
        haaqi(torch.stack([ref, ref]), batch, SR, SR, NORMAL, seed=0, backend=backend)


@pytest.mark.parametrize("equalisation", [0, 3, 7, True])
def test_haaqi_refuses_unknown_equalisation(pair, equalisation):
    with pytest.raises(ValueError, match="equalisation must be 1 .* or 2"):
        haaqi(*pair, SR, SR, NORMAL, equalisation=equalisation, seed=0)


@pytest.mark.parametrize("level1", [float("nan"), float("inf")])
def test_haaqi_refuses_nonfinite_level(pair, level1):
    with pytest.raises(ValueError, match="level1 must be a finite number"):
        haaqi(*pair, SR, SR, NORMAL, level1=level1, seed=0)


def test_haaqi_refuses_integer_pcm(pair):
    ref, proc = pair
    pcm = (proc * 32767).round().to(torch.int16)
    with pytest.raises(ValueError, match="processed has dtype torch.int16: give float audio"):
        haaqi(ref, pcm, SR, SR, NORMAL, seed=0)


def test_haaqi_accepts_numpy_as_torch(pair):
    ref, proc = pair
    ours = haaqi(ref.numpy(), proc.numpy(), SR, SR, np.zeros(6), seed=3)
    assert float(ours) == float(haaqi(ref, proc, SR, SR, NORMAL, seed=3))


def test_haaqi_refuses_impossible_audiogram(pair):
    with pytest.raises(ValueError, match="audiogram: 500 dB HL at 2000 Hz is outside"):
        haaqi(*pair, SR, SR, [0, 0, 0, 500, 0, 0], seed=0)
    with pytest.raises(ValueError, match="Audiogram.levels: -40 dB HL at 500 Hz"):
        Audiogram([0, -40, 0], [250, 500, 1000])
