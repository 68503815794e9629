"""The counter-based threshold noise (``haaqi.noise``)."""

import torch

from musicbench.metrics.haaqi.noise import threshold_noise


def test_threshold_noise_is_standard_normal_and_independent():
    z = threshold_noise(1, 4, 100_001)
    assert z.shape == (4, 100_001) and z.dtype == torch.float64
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    assert abs(float((z[..., :-1] * z[..., 1:]).mean())) < 0.01  # no lag-1 correlation
    assert abs(float((z[0] * z[1]).mean())) < 0.01  # streams are independent
    assert abs(float((z**4).mean()) - 3.0) < 0.1  # Gaussian kurtosis
    torch.testing.assert_close(threshold_noise(1, 4, 1000), z[:, :1000])
    assert not torch.equal(threshold_noise(2, 1, 1000), z[:1, :1000])


def test_cpu_kernels_draw_the_torch_streams():
    """The batched CPU path (uint32 hashes in a kernel, Box-Muller in NumPy) draws what ``threshold_noise``
    draws, to float32 rounding of log/cos/sin, for every stream of several seeds and an odd length."""
    import numpy as np

    from musicbench.metrics.haaqi.batch import counter_noise
    from musicbench.metrics.haaqi.noise import stream_key, stream_keys

    keys = stream_keys([7, 123456789], 32)
    assert keys[1, 40] == stream_key(123456789, 40)
    even, odd = counter_noise(keys.reshape(-1), 1001)
    assert even.shape == odd.shape == (128, 501)
    ours = np.stack((even, odd), axis=-1).reshape(2, 64, -1)[..., :1001]
    for i, seed in enumerate((7, 123456789)):
        theirs = threshold_noise(seed, 64, 1001, dtype=torch.float32).numpy()
        np.testing.assert_allclose(ours[i], theirs, rtol=0, atol=2e-6)
