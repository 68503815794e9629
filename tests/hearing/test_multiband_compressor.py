import numpy as np
import pytest
import torch
from clarity.enhancer.multiband_compressor import Crossover as ClarityCrossover
from clarity.enhancer.multiband_compressor import MultibandCompressor as ClarityMBC

from musicbench.audio.testsignals import music_like
from musicbench.hearing import CAD2_CROSSOVER_FREQUENCIES, MultibandCompressor, crossover, multiband_compress

SR = 44100
TOLERANCE = 1e-9  # relative to the peak of pyclarity's output; measured: below 1e-15

# The CAD2 baseline's fixed settings (recipes/cad2/task2/baseline/config.yaml).
CAD2_FIXED = {
    "attack": [11, 11, 14, 13, 11, 11],
    "release": [80, 80, 80, 80, 100, 100],
    "threshold": [-30, -30, -30, -30, -30, -30],
}


def _cad2_listener_params(levels_db: list[float]) -> dict:
    """Per-ear parameters as the CAD2 recipe assembles them from ``compressor_params.json``.

    The JSON holds per-listener ``cr_*`` (ratios) and ``gain_*`` (makeup gains, dB) per band; here they are
    made from an audiogram at 250 ... 8000 Hz with pyclarity's documented rule for the gain.
    """
    hl = np.asarray(levels_db, dtype=np.float64)
    return {
        **CAD2_FIXED,
        "ratio": list(np.round(1 + hl / 50, 2)),
        "makeup_gain": list(np.maximum((hl - 20) / 3, 0)),
    }


LEFT = _cad2_listener_params([20, 25, 35, 45, 55, 65])
RIGHT = _cad2_listener_params([10, 15, 30, 50, 70, 80])

PARAMETER_SETS = {
    "defaults": (CAD2_CROSSOVER_FREQUENCIES, None),
    "cad2_left": (CAD2_CROSSOVER_FREQUENCIES, LEFT),
    "cad2_right": (CAD2_CROSSOVER_FREQUENCIES, RIGHT),
    "soft_knee": (
        CAD2_CROSSOVER_FREQUENCIES,
        {
            "attack": 5.0,
            "release": 50.0,
            "threshold": -35.0,
            "ratio": 4.0,
            "makeup_gain": 6.0,
            "knee_width": 10.0,
        },
    ),
    "two_bands": (
        1000.0,
        {"threshold": [-20, -40], "ratio": [2, 8], "makeup_gain": [0, 3], "knee_width": [0, 4]},
    ),
    "three_bands_expander": (
        [500.0, 4000.0],
        {"threshold": -25.0, "ratio": [0.8, 3, 1], "attack": 1, "release": 300},
    ),
}


def _signals(seconds: float = 1.0) -> dict[str, np.ndarray]:
    music = music_like(seconds, SR, seed=3)
    noise = 0.02 * np.random.default_rng(4).standard_normal(int(seconds * SR))
    loud = 8 * music_like(seconds, SR, seed=5)
    # Silence then a tone: exact zeros in the bands, which pyclarity reads as 1e-12.
    gap = np.concatenate(
        (np.zeros(SR // 10), music_like(seconds, SR, seed=6)[: int(seconds * SR) - SR // 10])
    )
    return {"music": music, "noise": noise, "loud": loud, "gap": gap}


def _rel_err(ours: torch.Tensor, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(ours.numpy() - theirs)) / np.max(np.abs(theirs)))


@pytest.mark.parametrize("name", list(PARAMETER_SETS))
def test_matches_pyclarity_mono_and_stereo(name):
    freqs, params = PARAMETER_SETS[name]
    signals = _signals()
    stereo = np.stack((signals["music"], signals["noise"]))
    reference = ClarityMBC(freqs, SR, params)
    ours = MultibandCompressor(freqs, SR, params)
    expected, expected_bands = reference(stereo.copy(), return_bands=True)
    out, bands = ours(torch.from_numpy(stereo), return_bands=True)
    assert out.shape == stereo.shape and out.dtype == torch.float64
    assert bands.shape == expected_bands.shape
    assert _rel_err(out, expected) <= TOLERANCE
    assert _rel_err(bands, expected_bands) <= TOLERANCE
    for key in ("loud", "gap"):
        mono = signals[key]
        out_mono = ours(torch.from_numpy(mono))
        assert out_mono.shape == mono.shape
        assert _rel_err(out_mono, reference(mono.copy())[0]) <= TOLERANCE


def test_compression_changes_the_signal():
    # Guard against vacuous parity: the CAD2 settings really compress these signals.
    signal = torch.from_numpy(_signals()["loud"])
    out = MultibandCompressor(CAD2_CROSSOVER_FREQUENCIES, SR, {**LEFT, "makeup_gain": 0.0})(signal)
    assert out.square().mean().sqrt() < 0.75 * signal.square().mean().sqrt()
    # Without compression (ratio 1, no makeup gain) the bands sum back to an all-pass copy of the input.
    flat = MultibandCompressor(CAD2_CROSSOVER_FREQUENCIES, SR)(signal)
    torch.testing.assert_close(flat.square().mean(), signal.square().mean(), rtol=1e-2, atol=0)


def test_batch_and_per_ear_parameters_match_pyclarity_per_ear():
    signals = _signals()
    # (ears, batch, T) with one parameter set per ear, as the CAD2 recipe processes left and right.
    batch = np.stack([np.stack((signals["music"], signals["noise"], signals["gap"]))] * 2)
    batch[1] *= 0.5
    per_ear = {
        key: np.stack((np.broadcast_to(LEFT[key], 6), np.broadcast_to(RIGHT[key], 6)))[:, None, :]
        for key in LEFT
    }
    out = MultibandCompressor(CAD2_CROSSOVER_FREQUENCIES, SR, per_ear)(torch.from_numpy(batch))
    assert out.shape == batch.shape
    reference = ClarityMBC(CAD2_CROSSOVER_FREQUENCIES, SR)
    for ear, params in enumerate((LEFT, RIGHT)):
        reference.set_compressors(**params)
        assert _rel_err(out[ear], reference(batch[ear].copy())) <= TOLERANCE
    # A batch gives each row the result it gets alone.
    ours = MultibandCompressor(CAD2_CROSSOVER_FREQUENCIES, SR, LEFT)
    rows = torch.from_numpy(batch[0])
    alone = torch.stack([ours(row) for row in rows])
    # (Vectorised elementwise ops may round the last bit differently at other offsets.)
    torch.testing.assert_close(ours(rows), alone, rtol=1e-14, atol=1e-16)
    # float32 input is computed in float64.
    assert ours(rows.float()).dtype == torch.float64


def test_crossover_bands_are_pyclarity_bands_and_sum_to_all_pass():
    x = _signals()["music"][: SR // 2]
    bands = crossover(torch.from_numpy(x), CAD2_CROSSOVER_FREQUENCIES, SR)
    expected = ClarityCrossover(np.array(CAD2_CROSSOVER_FREQUENCIES), SR)(x)
    assert bands.shape == (6, len(x))
    np.testing.assert_array_equal(bands.numpy(), expected)
    np.testing.assert_array_equal(
        MultibandCompressor(CAD2_CROSSOVER_FREQUENCIES, SR).bands(torch.from_numpy(x)).numpy(), expected
    )
    # All-pass: the bands' sum keeps the spectrum's magnitude.
    total = np.abs(np.fft.rfft(bands.sum(0).numpy(), 1 << 16))
    impulse = np.zeros(1 << 16)
    impulse[0] = 1.0
    response = np.abs(
        np.fft.rfft(crossover(torch.from_numpy(impulse), CAD2_CROSSOVER_FREQUENCIES, SR).sum(0).numpy())
    )
    np.testing.assert_allclose(response, 1.0, atol=1e-6)
    assert total.max() > 0


def test_functional_form_matches_class():
    x = torch.from_numpy(_signals()["music"][: SR // 4])
    torch.testing.assert_close(
        multiband_compress(x, compressors_params=LEFT),
        MultibandCompressor(CAD2_CROSSOVER_FREQUENCIES, SR, LEFT)(x),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"crossover_frequencies": [1000, 500]}, "strictly increasing"),
        ({"crossover_frequencies": [1000, 30000]}, "crossover_frequencies"),
        ({"crossover_frequencies": [-5.0]}, "crossover_frequencies"),
        ({"crossover_frequencies": []}, "crossover_frequencies"),
        ({"sample_rate": 0}, "sample_rate"),
        ({"compressors_params": {"attack": 0}}, "attack"),
        ({"compressors_params": {"release": -10}}, "release"),
        ({"compressors_params": {"ratio": 0}}, "ratio"),
        ({"compressors_params": {"knee_width": -1}}, "knee_width"),
        ({"compressors_params": {"threshold": float("nan")}}, "threshold"),
        ({"compressors_params": {"makeup_gain": [1, 2, 3]}}, "makeup_gain.*6"),
        ({"compressors_params": {"gain": 3}}, "unknown keys.*gain"),
        ({"compressors_params": {"ratio": "fast"}}, "ratio"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    args = {"crossover_frequencies": CAD2_CROSSOVER_FREQUENCIES, "sample_rate": SR, **kwargs}
    with pytest.raises(ValueError, match=match):
        MultibandCompressor(**args)


def test_bad_signals_raise():
    mbc = MultibandCompressor(CAD2_CROSSOVER_FREQUENCIES, SR, {"ratio": np.ones((3, 6))})
    with pytest.raises(ValueError, match="broadcast"):
        mbc(torch.zeros(2, 100, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating"):
        mbc(torch.zeros(3, 100, dtype=torch.int16))
    with pytest.raises(ValueError, match="samples dimension"):
        mbc(torch.tensor(1.0))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_input_gives_the_cpu_result_on_cuda():
    x = torch.from_numpy(np.stack([_signals(0.25)["music"], _signals(0.25)["loud"]]))
    compressor = MultibandCompressor(CAD2_CROSSOVER_FREQUENCIES, SR, LEFT)
    out, bands = compressor.process(x.cuda(), return_bands=True)
    assert out.is_cuda and bands.is_cuda
    expected, expected_bands = compressor.process(x, return_bands=True)
    torch.testing.assert_close(out.cpu(), expected, rtol=0, atol=0)
    torch.testing.assert_close(bands.cpu(), expected_bands, rtol=0, atol=0)
