"""Parity of ``musicbench.metrics.bsseval`` with museval (computed here, on the same arrays).

Tolerance: every frame value where museval is finite agrees within ``TOL_DB``; NaN exactly where museval has
NaN. Signals are short (a few seconds at 16 kHz with 0.5 s frames, plus one at the real default 1 s frames at
44.1 kHz) so that museval stays fast.

Two cases are ill-posed and are checked only where the answer is defined (see the tests' docstrings):
stationary sums of sines (rank-deficient Gram matrix) and estimates lying exactly in the span of the delayed
references (zero artifacts, so SAR is a ratio against rounding noise).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from musicbench.metrics.bsseval import METRICS, bsseval, bsseval_metric

museval = pytest.importorskip("museval")

# One worker runs this whole file under `pytest -n 2 --dist loadgroup`: museval (OpenBLAS) and torch (MKL)
# each use every core, and two workers contending for two cores made the file slower than running it serially.
pytestmark = pytest.mark.xdist_group("bsseval")

TOL_DB = 1e-3
FS = 16000
WIN = 8000  # 0.5 s frames at 16 kHz
N = int(3.3 * FS)  # not a multiple of the window: museval drops the partial last frame


# ---------------------------------------------------------------------------------------------------------
# signal families, (sources, channels, samples) float64


def notes(rng: np.random.Generator, nsrc: int, nchan: int, n: int = N, fs: int = FS) -> np.ndarray:
    """Tonal: sequences of harmonic notes with attack/decay envelopes, panned per source."""
    x = np.zeros((nsrc, nchan, n))
    for s in range(nsrc):
        pan = rng.uniform(0.3, 1.0, nchan)
        pos = 0
        while pos < n:
            dur = int(rng.uniform(0.2, 0.7) * fs)
            m = min(dur, n - pos)
            t = np.arange(m) / fs
            f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
            h = np.arange(1, 8)[:, None]
            tone = (np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi, (7, 1))) / h).sum(0)
            x[s, :, pos : pos + m] = (
                pan[:, None] * tone * np.minimum(1, t / 0.01) * np.exp(-t * rng.uniform(1, 6))
            )
            pos += dur
    return x


def sines(rng: np.random.Generator, nsrc: int, nchan: int, n: int = N, fs: int = FS) -> np.ndarray:
    """Stationary sums of harmonic sines (a handful of spectral lines per source)."""
    t = np.arange(n) / fs
    x = np.zeros((nsrc, nchan, n))
    for s in range(nsrc):
        f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        for h in range(1, 6):
            x[s] += np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi, (nchan, 1))) / h
    return x


def transients(rng: np.random.Generator, nsrc: int, nchan: int, n: int = N) -> np.ndarray:
    """Clicks and exponentially decaying noise bursts."""
    x = np.zeros((nsrc, nchan, n))
    for s in range(nsrc):
        for k in rng.integers(0, n - 2000, 25):
            burst = rng.standard_normal(2000) * np.exp(-np.arange(2000) / rng.uniform(50, 400))
            x[s, :, k : k + 2000] += burst * rng.uniform(0.5, 1.0, (nchan, 1))
        x[s][:, rng.integers(0, n, 30)] += rng.choice([-1.0, 1.0], (nchan, 30))  # single-sample clicks
    return x


def noise(rng: np.random.Generator, nsrc: int, nchan: int, n: int = N) -> np.ndarray:
    return rng.standard_normal((nsrc, nchan, n))


def separated(rng: np.random.Generator, ref: np.ndarray, crosstalk: float, noise_level: float) -> np.ndarray:
    """A plausible estimate: the reference, plus crosstalk from the other sources, plus white noise."""
    others = ref.sum(0, keepdims=True) - ref
    return ref + crosstalk * others + noise_level * ref.std() * rng.standard_normal(ref.shape)


# ---------------------------------------------------------------------------------------------------------
# helpers


def museval_eval(ref: np.ndarray, est: np.ndarray, **kw) -> dict[str, np.ndarray]:
    """``museval.evaluate`` on our (sources, channels, samples) layout."""
    out = museval.evaluate(ref.transpose(0, 2, 1), est.transpose(0, 2, 1), **kw)
    return dict(zip(METRICS, out, strict=True))


def museval_bss_eval(ref: np.ndarray, est: np.ndarray, **kw) -> dict[str, np.ndarray]:
    """``museval.metrics.bss_eval`` (all variants) on our layout; includes ``perm``."""
    out = museval.metrics.bss_eval(ref.transpose(0, 2, 1), est.transpose(0, 2, 1), **kw)
    return dict(zip((*METRICS, "perm"), out, strict=True))


def assert_parity(
    ours: dict[str, torch.Tensor], theirs: dict[str, np.ndarray], metrics: tuple[str, ...] = METRICS
) -> None:
    """Same shapes, NaN where museval has NaN, and |difference| <= TOL_DB where museval is finite (for
    ``metrics``; the others only need matching NaN)."""
    for name in METRICS:
        a, b = ours[name].cpu().numpy(), theirs[name]
        assert a.shape == b.shape, (name, a.shape, b.shape)
        assert a.dtype == np.float64
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{name}: NaN frames differ")
        if name in metrics:
            np.testing.assert_array_equal(np.isinf(a), np.isinf(b), err_msg=f"{name}: inf frames differ")
            finite = np.isfinite(b)
            if finite.any():
                diff = np.abs(a[finite] - b[finite]).max()
                assert diff <= TOL_DB, f"{name}: max |ours - museval| = {diff:.3g} dB"


# ---------------------------------------------------------------------------------------------------------
# parity, museval.evaluate (images, no permutation: the MUSDB protocol)


def _case(family: str, nsrc: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if family == "tonal":
        ref = notes(rng, nsrc, 2)
        return ref, separated(rng, ref, 0.2, 0.05)
    if family == "noisy":  # noise-like references, estimates with heavy white noise
        ref = noise(rng, nsrc, 2)
        return ref, separated(rng, ref, 0.3, 1.0)
    if family == "white_estimate":  # estimates are pure white noise: all metrics very low
        ref = notes(rng, nsrc, 2)
        return ref, rng.standard_normal(ref.shape)
    if family == "transient":
        ref = transients(rng, nsrc, 2)
        return ref, separated(rng, ref, 0.1, 0.02)
    if family == "near_perfect":
        ref = notes(rng, nsrc, 2) + 1e-3 * noise(rng, nsrc, 2)
        return ref, separated(rng, ref, 0.0, 1e-3)
    if family == "mono":  # every stem L = R: singular Gram matrices, museval's lstsq fallback
        ref = np.repeat(notes(rng, nsrc, 1) + 1e-3 * noise(rng, nsrc, 1), 2, axis=1)
        return ref, separated(rng, ref, 0.2, 0.05)
    if family == "mono_and_stereo":
        ref = notes(rng, nsrc, 2) + 1e-3 * noise(rng, nsrc, 2)
        ref[0, 1] = ref[0, 0]
        return ref, separated(rng, ref, 0.2, 0.05)
    if family == "silent_passages":  # stems silent in some frames -> those frames are NaN
        ref = notes(rng, nsrc, 2) + 1e-3 * noise(rng, nsrc, 2)
        est = separated(rng, ref, 0.2, 0.05)
        ref[0, :, WIN : 3 * WIN + 50] = 0.0  # frames 1 and 2 silent in a reference
        est[-1, :, 4 * WIN : 5 * WIN] = 0.0  # frame 4 silent in an estimate
        ref[1, 1, 5 * WIN : 6 * WIN] = -ref[1, 0, 5 * WIN : 6 * WIN]  # L = -R: channel sum is zero
        return ref, est
    raise ValueError(family)


FAMILIES = [
    ("tonal", 2),
    ("tonal", 4),
    ("noisy", 2),
    ("white_estimate", 2),
    ("transient", 2),
    ("near_perfect", 2),
    ("mono", 2),
    ("mono_and_stereo", 3),
    ("silent_passages", 2),
]


@pytest.mark.parametrize(("family", "nsrc"), FAMILIES, ids=[f"{f}-{s}src" for f, s in FAMILIES])
def test_parity_v4(family: str, nsrc: int) -> None:
    ref, est = _case(family, nsrc, seed=nsrc)
    theirs = museval_eval(ref, est, win=WIN, hop=WIN, mode="v4")
    ours = bsseval(torch.from_numpy(ref), torch.from_numpy(est), win=WIN, hop=WIN, mode="v4")
    assert ours["sdr"].shape == (nsrc, N // WIN)
    assert_parity(ours, theirs)
    if family == "near_perfect":
        assert (theirs["sdr"] > 40).all() and (ours["sdr"].numpy() > 40).all()
    if family == "silent_passages":
        assert np.isnan(theirs["sdr"][:, [1, 2, 4, 5]]).all() and np.isfinite(theirs["sdr"][:, [0, 3]]).all()


V3_FAMILIES = [("tonal", 2), ("transient", 2), ("mono_and_stereo", 2), ("silent_passages", 2)]


@pytest.mark.parametrize(("family", "nsrc"), V3_FAMILIES, ids=[f"{f}-{s}src" for f, s in V3_FAMILIES])
def test_parity_v3(family: str, nsrc: int) -> None:
    """v3 fits filters on every frame (museval solves a Gram system per frame): fewer frames keep it fast."""
    ref, est = _case(family, nsrc, seed=10 + nsrc)
    if family != "silent_passages":
        ref, est = ref[..., : 3 * WIN + 77], est[..., : 3 * WIN + 77]
    theirs = museval_eval(ref, est, win=WIN, hop=WIN, mode="v3")
    ours = bsseval(ref, est, win=WIN, hop=WIN, mode="v3")
    assert_parity(ours, theirs)


def test_parity_default_window_44k() -> None:
    """The real MUSDB setting: 44.1 kHz, win = hop = 44100 (museval's defaults), stereo, 2.6 s (partial last
    frame: 2 frames)."""
    rng = np.random.default_rng(7)
    n = int(2.6 * 44100)
    ref = notes(rng, 3, 2, n=n, fs=44100) + 1e-3 * noise(rng, 3, 2, n=n)
    est = separated(rng, ref, 0.15, 0.1)
    theirs = museval_eval(ref, est)  # museval defaults: win = hop = 44100, v4
    ours = bsseval(torch.from_numpy(ref), torch.from_numpy(est))
    assert ours["sdr"].shape == (3, 2)
    assert_parity(ours, theirs)


@pytest.mark.parametrize("tail", [0, 100])
def test_tiled_frames_match_museval_and_the_general_path(tail: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames that tile the signal (hop == win) are transformed once, their spectra serving the whole-signal
    correlations too; here with no samples after the last frame, and with fewer than the filter length (the
    products straddling that boundary are cut short). The general path (spectra not kept) agrees."""
    rng = np.random.default_rng(21 + tail)
    n = 3 * WIN + tail
    ref = notes(rng, 2, 2, n=n) + 1e-3 * noise(rng, 2, 2, n=n)
    est = separated(rng, ref, 0.2, 0.05)
    tiled = bsseval(ref, est, win=WIN, hop=WIN)
    assert_parity(tiled, museval_eval(ref, est, win=WIN, hop=WIN, mode="v4"))
    monkeypatch.setattr(sys.modules["musicbench.metrics.bsseval.api"], "_SPECTRA_BYTES", 0)
    general = bsseval(ref, est, win=WIN, hop=WIN)
    for name in METRICS:
        torch.testing.assert_close(tiled[name], general[name], rtol=0, atol=1e-8)


def test_parity_overlapping_frames_and_whole_signal() -> None:
    rng = np.random.default_rng(3)
    ref = notes(rng, 2, 2) + 1e-3 * noise(rng, 2, 2)
    est = separated(rng, ref, 0.2, 0.1)
    assert_parity(bsseval(ref, est, win=WIN, hop=WIN // 2), museval_eval(ref, est, win=WIN, hop=WIN // 2))
    # framewise=False: one frame over the whole signal (museval's window=inf)
    theirs = museval_bss_eval(ref, est, window=np.inf, hop=np.inf)
    ours = bsseval(ref, est, framewise=False)
    assert ours["sdr"].shape == (2, 1)
    assert_parity(ours, theirs)
    # a window longer than the signal is the same single frame
    assert_parity(bsseval(ref, est, win=10 * N, hop=10 * N), theirs)


def test_parity_padding_of_estimates() -> None:
    """museval.evaluate zero-pads short estimates and truncates long ones to the reference length."""
    rng = np.random.default_rng(4)
    ref = notes(rng, 2, 2) + 1e-3 * noise(rng, 2, 2)
    est = separated(rng, ref, 0.2, 0.1)
    for est_len in (N - 3000, N + 500):
        e = (
            est[..., :est_len]
            if est_len <= N
            else np.pad(est, ((0, 0), (0, 0), (0, est_len - N)), mode="wrap")
        )
        assert_parity(bsseval(ref, e, win=WIN, hop=WIN), museval_eval(ref, e, win=WIN, hop=WIN))
    with pytest.raises(ValueError, match="differ in shape"):
        bsseval(ref, est[..., :-10], padding=False)


# ---------------------------------------------------------------------------------------------------------
# other museval variants: bss_eval_sources, permutation search


@pytest.mark.parametrize("framewise_filters", [False, True], ids=["v4", "v3"])
def test_parity_sources_variant_and_permutation(framewise_filters: bool) -> None:
    """``bss_eval_sources`` variant and the permutation search of ``museval.metrics.bss_eval``, with shorter
    filters (``filters_len=256``; the Gram systems are 8 times cheaper)."""
    rng = np.random.default_rng(5)
    n = 3 * WIN + 123  # 3 frames
    ref = notes(rng, 2, 2, n=n) + 1e-3 * noise(rng, 2, 2, n=n)
    good = separated(rng, ref, 0.2, 0.1)
    est = good[::-1].copy()  # estimates in the wrong order
    est[1, :, WIN : 2 * WIN] = 0.0  # a silent frame: NaN SIR, so museval keeps the identity (there / in v4)
    mode = "v3" if framewise_filters else "v4"
    kw = dict(
        window=WIN, hop=WIN, compute_permutation=True, framewise_filters=framewise_filters, filters_len=256
    )
    ours_kw = dict(win=WIN, hop=WIN, mode=mode, compute_permutation=True, filter_len=256)
    for sources_version in (False, True):
        theirs = museval_bss_eval(ref, est, bsseval_sources_version=sources_version, **kw)
        ours = bsseval(ref, est, bsseval_sources=sources_version, **ours_kw)
        assert_parity(ours, theirs)
        np.testing.assert_array_equal(
            ours["perm"].numpy(), np.broadcast_to(theirs["perm"], ours["perm"].shape)
        )
        if sources_version:
            assert ours["isr"].isnan().all()
    expected = [[1, 0, 1], [0, 1, 0]] if framewise_filters else [[0, 0, 0], [1, 1, 1]]
    np.testing.assert_array_equal(ours["perm"].numpy(), expected)
    # without the silent frame the search over the whole track (v4) finds the true order as well
    est = good[::-1].copy()
    theirs = museval_bss_eval(ref, est, **kw)
    ours = bsseval(ref, est, **ours_kw)
    assert_parity(ours, theirs)
    assert (ours["perm"] == torch.tensor([1, 0])[:, None]).all()


# ---------------------------------------------------------------------------------------------------------
# ill-posed cases: compare what is defined


def test_stationary_sines_v4_sdr_isr() -> None:
    """Stationary sums of sines: the 512-lag Gram matrix of a few spectral lines is rank-deficient, so the
    whole-track filters are determined only up to a large null space. In v4 those null-space components leak
    into the frames' projections, and museval's SIR/SAR are rounding noise: scaling the references by
    (1 + 1e-12) moves museval's own SIR by ~20 dB here. SDR (plain SNR) and ISR are well defined and match.
    In v3 (filters fitted on the frame they are applied to) everything is defined and matches."""
    rng = np.random.default_rng(6)
    ref = sines(rng, 2, 2, n=4 * WIN + 99)
    est = separated(rng, ref, 0.2, 0.05)
    assert_parity(
        bsseval(ref, est, win=WIN, hop=WIN), museval_eval(ref, est, win=WIN, hop=WIN), ("sdr", "isr")
    )
    ref, est = ref[..., : 2 * WIN], est[..., : 2 * WIN]
    assert_parity(
        bsseval(ref, est, win=WIN, hop=WIN, mode="v3"), museval_eval(ref, est, win=WIN, hop=WIN, mode="v3")
    )


def test_estimates_in_reference_span() -> None:
    """Estimates that are exact mixtures of the references have no artifacts: SAR compares the projection to
    a rounding-level residual (museval reads 150-250 dB, and other numbers with another BLAS). Check SDR, ISR
    and SIR, and that both call SAR huge. A perfect estimate: SDR = +inf in both, the rest at rounding level."""
    rng = np.random.default_rng(8)
    ref = notes(rng, 2, 2) + 1e-3 * noise(rng, 2, 2)
    est = separated(rng, ref, 0.3, 0.0)
    theirs = museval_eval(ref, est, win=WIN, hop=WIN)
    ours = bsseval(ref, est, win=WIN, hop=WIN)
    assert_parity(ours, theirs, ("sdr", "isr", "sir"))
    assert (theirs["sar"] > 100).all() and (ours["sar"].numpy() > 100).all()

    ref, est = ref[..., : 2 * WIN], ref[..., : 2 * WIN].copy()
    theirs = museval_eval(ref, est, win=WIN, hop=WIN)
    ours = bsseval(ref, est, win=WIN, hop=WIN)
    assert np.isposinf(theirs["sdr"]).all() and ours["sdr"].isposinf().all()
    for name in ("isr", "sir", "sar"):
        assert (theirs[name] > 150).all() and (ours[name].numpy() > 150).all()


# ---------------------------------------------------------------------------------------------------------
# internals


@pytest.mark.parametrize("nsampl", [5000, 3 * 15873, 2 * 15873 + 30, 2 * 15873 + 600, 158760])
def test_lagged_xcorr_matches_direct_sums(nsampl: int) -> None:
    """Block-wise FFT correlations (with boundary terms; last blocks shorter than the filter) vs direct sums."""
    from musicbench.metrics.bsseval.filters import _lagged_xcorr

    rng = np.random.default_rng(nsampl)
    x, e = rng.standard_normal((3, nsampl)), rng.standard_normal((2, nsampl))
    nlags = 512
    r = _lagged_xcorr(torch.from_numpy(x), torch.from_numpy(e), nlags).numpy()
    z = np.concatenate([x, e])
    direct = np.stack([z[:, k:] @ x[:, : nsampl - k].T for k in range(nlags)], axis=-1)
    np.testing.assert_allclose(r, direct, rtol=0, atol=1e-9 * np.abs(direct).max())


# ---------------------------------------------------------------------------------------------------------
# silence, inputs, API


@pytest.mark.parametrize("which", ["reference", "estimate", "reference_l_minus_r"])
def test_wholly_silent_stem_raises_like_museval(which: str) -> None:
    rng = np.random.default_rng(9)
    ref = notes(rng, 3, 2, n=3 * WIN)
    est = separated(rng, ref, 0.2, 0.1)
    if which == "reference":
        ref[1] = 0.0
    elif which == "estimate":
        est[2] = 0.0
    else:
        ref[1, 1] = -ref[1, 0]  # sums to zero over channels: silent by museval's rule
    with pytest.raises(ValueError):
        museval_eval(ref, est, win=WIN, hop=WIN)
    idx = 2 if which == "estimate" else 1
    with pytest.raises(ValueError, match=rf"source\(s\) \[{idx}\] are silent"):
        bsseval(ref, est, win=WIN, hop=WIN)


def test_input_types_and_layout() -> None:
    rng = np.random.default_rng(11)
    ref = notes(rng, 2, 2, n=3 * WIN) + 1e-3 * noise(rng, 2, 2, n=3 * WIN)
    est = separated(rng, ref, 0.2, 0.1)
    a = bsseval(ref, est, win=WIN, hop=WIN)
    b = bsseval(torch.from_numpy(ref), torch.from_numpy(est), win=WIN, hop=WIN)
    for name in METRICS:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
        assert b[name].dtype == torch.float64 and b[name].shape == (2, 3)
    # float32 input is promoted; (sources, samples) is mono
    c = bsseval(torch.from_numpy(ref).float(), torch.from_numpy(est).float(), win=WIN, hop=WIN)
    assert c["sdr"].dtype == torch.float64
    mono = bsseval(ref[:, 0], est[:, 0], win=WIN, hop=WIN)
    assert_parity(mono, museval_eval(ref[:, 0:1], est[:, 0:1], win=WIN, hop=WIN))


def test_bsseval_metric_wrapper() -> None:
    rng = np.random.default_rng(12)
    ref = torch.from_numpy(noise(rng, 2, 2, n=2 * 44100 + 10))
    est = ref + 0.1 * torch.randn_like(ref)
    out = bsseval_metric(ref, est)
    assert set(out) == set(METRICS)
    assert all(v.shape == (2, 2) and v.dtype == torch.float64 for v in out.values())
    assert (out["sdr"] - 20).abs().max() < 0.5
    assert bsseval_metric(ref, est, win=22050, hop=22050)["sdr"].shape == (2, 4)


def test_invalid_arguments() -> None:
    x = torch.randn(2, 2, 3 * WIN, dtype=torch.float64)
    with pytest.raises(ValueError, match="mode"):
        bsseval(x, x, mode="v2")
    with pytest.raises(ValueError, match="sources, channels, samples"):
        bsseval(x[None], x[None])
    with pytest.raises(ValueError, match="differ in shape"):
        bsseval(x, x[:1])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    ref, est = _case("mono_and_stereo", 3, seed=13)
    cpu = bsseval(ref, est, win=WIN, hop=WIN)
    gpu = bsseval(torch.from_numpy(ref).cuda(), torch.from_numpy(est).cuda(), win=WIN, hop=WIN)
    assert gpu["sdr"].device.type == "cuda"
    for name in METRICS:
        torch.testing.assert_close(gpu[name].cpu(), cpu[name], rtol=0, atol=1e-6, equal_nan=True)
    ref, est = _case("silent_passages", 2, seed=14)
    for mode in ("v3", "v4"):
        cpu = bsseval(ref, est, win=WIN, hop=WIN, mode=mode, compute_permutation=True)
        gpu = bsseval(ref, est, win=WIN, hop=WIN, mode=mode, compute_permutation=True, device="cuda")
        for name in METRICS:
            torch.testing.assert_close(gpu[name].cpu(), cpu[name], rtol=0, atol=1e-6, equal_nan=True)
        assert torch.equal(gpu["perm"].cpu(), cpu["perm"])
