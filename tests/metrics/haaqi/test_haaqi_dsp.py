"""The torch versions of scipy routines (``haaqi.dsp``) against scipy itself."""

import numpy as np
import scipy.signal as sp_signal
import torch

from musicbench.metrics.haaqi import dsp

T = torch.from_numpy


def test_blockwise_cross_correlation_equals_full():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 40000))
    v = np.roll(a, 57, axis=-1) + 0.3 * rng.standard_normal((3, 40000))
    full = sp_signal.correlate(a[1], v[1], "full")[40000 - 1 - 500 : 40000 + 500]
    blocks = dsp.xcorr_blocks(a, v, 500, n_fft=4096)  # 3 rows, 14 blocks: exercises block edges
    np.testing.assert_allclose(blocks[1], full, rtol=1e-10, atol=1e-8 * np.abs(full).max())
    assert int(np.argmax(blocks[1])) - 500 == -57
    np.testing.assert_allclose(dsp.xcorr(T(a), T(v), 500).numpy(), blocks, rtol=1e-10, atol=1e-7)
