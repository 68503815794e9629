"""HAAQI's features (``haaqi.features``) of pyclarity's ear-model outputs against pyclarity's own."""

import numpy as np
import pytest
import torch
from clarity.evaluator.haspi import eb

from musicbench.metrics.haaqi import features

FS = 24000
T = torch.from_numpy


def _ear_outputs(music, levels, seed=0, seconds=0.6):
    x = music(seconds, seed=seed)
    y = np.roll(x, 40) * 1.5 + 0.01 * np.random.default_rng(seed + 1).standard_normal(len(x))
    np.random.seed(seed)
    return eb.ear_model(x, FS, y, FS, np.array(levels, float), 1, 65.0)


def test_env_smooth_and_melcor9_and_mel_cepstrum(music, rel, losses):
    ref_db, _, proc_db, _, _, _, fs = _ear_outputs(music, losses["mild"])
    ref_s, proc_s = eb.env_smooth(ref_db, 8, fs), eb.env_smooth(proc_db, 8, fs)
    for backend in ("numba", "torch"):
        assert rel(features.env_smooth(T(ref_db), 8, fs, backend=backend), ref_s) < 1e-13
        # batched over a leading dimension
        both = features.env_smooth(torch.stack((T(ref_db), T(proc_db))), 8, fs, backend=backend)
        assert rel(both[1], proc_s) < 1e-13
    # lengths that leave a partial last segment
    for n in (ref_db.shape[-1] - 77, ref_db.shape[-1] - 150):
        cut = eb.env_smooth(ref_db[:, :n], 8, fs)
        assert rel(features.env_smooth(T(ref_db[:, :n].copy()), 8, fs, backend="numba"), cut) < 1e-13
    theirs = eb.melcor9(ref_s, proc_s, 2.5, 0.0, 8)
    ours = features.melcor9(T(ref_s), T(proc_s), 2.5, 8)
    for o, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(np.asarray(o), t, rtol=1e-11, atol=1e-13)
    avg_t, ind_t = eb.mel_cepstrum_correlation(ref_s, proc_s, 2.5, 0.0)
    avg_o, ind_o = features.mel_cepstrum_correlation(T(ref_s), T(proc_s), 2.5)
    np.testing.assert_allclose(float(avg_o), avg_t, rtol=1e-12)
    np.testing.assert_allclose(ind_o.numpy(), ind_t, rtol=1e-11, atol=1e-13)
    # Below threshold everywhere: zeros, as pyclarity.
    silent = np.zeros_like(ref_s)
    assert (
        float(features.melcor9(T(silent), T(proc_s), 2.5, 8)[2]) == eb.melcor9(silent, proc_s, 2.5, 0.0, 8)[2]
    )


def test_spectrum_diff():
    rng = np.random.default_rng(7)
    a, b = rng.uniform(0, 40, 32), rng.uniform(0, 40, 32)
    for o, t in zip(features.spectrum_diff(T(a), T(b)), eb.spectrum_diff(a, b), strict=True):
        np.testing.assert_allclose(o.numpy(), t, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_bm_covary_and_ave_covary2(backend, music, rel, losses):
    _, ref_bm, _, proc_bm, _, _, fs = _ear_outputs(music, losses["mild"], seed=1)
    theirs = eb.bm_covary(ref_bm, proc_bm, 16, fs)
    ours = features.bm_covary(T(ref_bm), T(proc_bm), 16, fs, backend=backend)
    for o, t in zip(ours, theirs, strict=True):
        assert rel(o, t) < 1e-12
    avg_t, sync_t = eb.ave_covary2(theirs[0], theirs[1], 2.5)
    avg_o, sync_o = features.ave_covary2(T(theirs[0]), T(theirs[1]), 2.5)
    np.testing.assert_allclose(float(avg_o), avg_t, rtol=1e-12)
    np.testing.assert_allclose(sync_o.numpy(), sync_t, rtol=1e-12)
