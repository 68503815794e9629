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
