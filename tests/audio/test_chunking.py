import functools

import pytest
import torch

from musicbench.audio.chunking import chunked_apply, crossfade_weights
from musicbench.models.separation import MaskSeparator
from musicbench.nets.unet import UNet

SR = 16000


def test_crossfade_ramps_are_complementary():
    w = crossfade_weights(100, 20, 20)
    # The fade-out of one chunk and the fade-in of the next cover the same samples and sum to one.
    assert torch.allclose(w[:20] + w[-20:], torch.ones(20))
    assert torch.all(w[20:80] == 1)


@pytest.mark.parametrize("total", [9999, 10000, 25_001, 48_000])
def test_chunked_identity_is_exact(total):
    x = torch.randn(2, 2, total)
    y = chunked_apply(lambda v: v.unsqueeze(1) * 3, x, chunk=4000, context=500, crossfade=1000, align=128)
    assert y.shape == (2, 1, 2, total)
    torch.testing.assert_close(y[:, 0], 3 * x)


def test_crossfade_removes_steps_of_a_chunk_dependent_gain():
    # A "model" whose gain depends on the chunk's content: without cross-fades its output jumps at
    # every seam; with them the largest sample-to-sample change at a seam stays that of the signal.
    t = torch.arange(64000) / SR
    x = (torch.sin(2 * torch.pi * 101.7 * t) * (1 + 4 * t)).reshape(1, 1, -1)
    fn = lambda v: v / v.abs().amax()  # noqa: E731
    seams = range(8000, 64000, 8000)

    def seam_vs_rest(y):
        d = y.diff(dim=-1).abs()[0, 0]
        near = torch.zeros_like(d, dtype=torch.bool)
        for s in seams:
            near[s - 1100 : s + 1100] = True
        return d[near].amax() / d[~near].amax()

    hard = chunked_apply(fn, x, chunk=8000, context=0, crossfade=0)
    smooth = chunked_apply(fn, x, chunk=8000, context=0, crossfade=2000)
    assert seam_vs_rest(hard) > 2  # the test can fail: hard seams do jump
    assert seam_vs_rest(smooth) < 1.1


def _separator(**kw):
    torch.manual_seed(0)
    net = functools.partial(UNet, depth=3, base_channels=4)
    model = MaskSeparator(
        net,
        sources=["a", "b"],
        optimizer=functools.partial(torch.optim.Adam),
        sample_rate=SR,
        n_fft=512,
        hop_length=128,
        **kw,
    )
    return model.eval()


def test_chunked_separation_equals_whole_track_separation():
    """Seam test: overlap-add of chunks (with context) equals one pass over the whole track."""
    model = _separator(chunk_seconds=1.0, context_seconds=1.0, crossfade_seconds=0.25)
    g = torch.Generator().manual_seed(1)
    t = torch.arange(6 * SR) / SR
    x = 0.3 * torch.sin(2 * torch.pi * 220 * t) + 0.05 * torch.randn(len(t), generator=g)
    x = torch.stack([x, 0.7 * x]).unsqueeze(0)
    with torch.no_grad():
        whole = model(x)
        chunked = model.separate(x)
    assert chunked.shape == whole.shape == (1, 2, 2, 6 * SR)
    inner = slice(SR, 5 * SR)  # away from the track edges (zero padding differs there)
    err = (chunked - whole)[..., inner].abs().amax()
    assert err < 1e-4 * whole.abs().amax()
    # No step at chunk boundaries: the output's largest jump at a seam is not larger than elsewhere.
    d = chunked.diff(dim=-1).abs()
    seams = [s for s in range(SR, 5 * SR, SR)]
    seam_jump = max(d[..., s - 2 : s + 2].amax() for s in seams)
    assert seam_jump <= d[..., inner].amax()
