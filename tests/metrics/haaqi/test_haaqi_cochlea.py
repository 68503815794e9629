"""The cochlear model driver (``haaqi.cochlea``): both back ends against pyclarity's ``ear_model``."""

import numpy as np
import pytest
import torch
from clarity.evaluator.haspi import eb

from musicbench.metrics.haaqi import cochlea

T = torch.from_numpy


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_ear_model_matches_with_the_same_noise(backend, music, rel, losses):
    x = music(0.6, 44100)
    y = music(0.6, 44100, seed=2) * 0.5 + x
    levels = np.array(losses["cookie_bite"], float)
    np.random.seed(3)
    theirs = eb.ear_model(x, 44100, y, 44100, levels, 1, 65.0)
    np.random.seed(3)

    def noise(n):
        return T(np.stack([np.random.standard_normal((32, n)), np.random.standard_normal((32, n))]))

    ours = cochlea.ear_model(
        T(x), 44100, T(y), 44100, T(levels), 1, 65.0, noise=noise, backend=backend, resampling="pyclarity"
    )
    for o, t in zip(ours[:6], theirs[:6], strict=True):
        assert rel(o, t) < 1e-7
    assert ours[6] == theirs[6]


def test_backend_choice_and_errors():
    assert cochlea.resolve_backend("auto", torch.device("cpu")) == "numba"
    assert cochlea.resolve_backend("auto", torch.device("cuda", 0)) == "torch"
    with pytest.raises(ValueError, match="backend"):
        cochlea.resolve_backend("fast", torch.device("cpu"))
    with pytest.raises(ValueError, match="CPU"):
        cochlea.resolve_backend("numba", torch.device("cuda", 0))
