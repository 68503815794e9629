"""Full-track processing in chunks: overlap-add with context margins and linear cross-fades."""

from __future__ import annotations

from collections.abc import Callable

import torch


def crossfade_weights(
    length: int,
    fade_in: int,
    fade_out: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Weights of shape ``(length,)``: a linear ramp over ``fade_in`` samples, ones, a ramp over ``fade_out``.

    Ramps of neighbouring chunks are complementary, so the weights of overlapping chunks sum to one.
    """
    w = torch.ones(length, device=device, dtype=dtype)
    if fade_in > 0:
        w[:fade_in] = (torch.arange(fade_in, device=device, dtype=dtype) + 0.5) / fade_in
    if fade_out > 0:
        w[length - fade_out :] = torch.flip(
            (torch.arange(fade_out, device=device, dtype=dtype) + 0.5) / fade_out, [0]
        )
    return w


def chunked_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    chunk: int,
    context: int = 0,
    crossfade: int = 0,
    align: int = 1,
) -> torch.Tensor:
    """Apply ``fn`` to a long signal chunk by chunk and overlap-add the results.

    Each chunk (the *core*, ``chunk`` samples) is processed together with ``context`` samples of real
    signal on each side (clipped at the track edges), so the network sees the same neighbourhood as it
    would on the whole track; only the core is kept. Neighbouring cores overlap by ``crossfade`` samples
    and are blended with complementary linear ramps, so no step can appear at a chunk seam.

    Args:
        fn: maps ``(batch, channels, samples)`` to ``(batch, *extra, samples)`` with the same length.
        x: input of shape ``(batch, channels, samples)``.
        chunk: core length in samples.
        context: extra samples read on each side of a core (discarded after ``fn``).
        crossfade: overlap between neighbouring cores in samples (< chunk).
        align: chunk and window starts are multiples of this, so that a network that is only
            shift-invariant by some multiple (STFT hop x the U-Net's total stride) sees its input on the
            same grid as for the whole track; ``context`` is rounded up to a multiple.

    Returns:
        ``(batch, *extra, samples)``.
    """
    total = x.shape[-1]
    if chunk <= 0:
        raise ValueError(f"chunk must be > 0 samples, got {chunk}")
    if not 0 <= crossfade < chunk:
        raise ValueError(f"crossfade must be in [0, chunk={chunk}), got {crossfade}")
    if total <= chunk:
        return fn(x)
    context = -(-context // align) * align  # window starts stay on the alignment grid
    step = max(align, ((chunk - crossfade) // align) * align)
    starts = list(range(0, total - crossfade, step))
    if starts[-1] + chunk < total:  # the final core must reach the end of the track
        starts.append(starts[-1] + step)
    # A short final core would hand fn a few samples (fewer than an STFT frame, without context): start it
    # earlier, on the grid, so that it is a whole chunk; its longer overlap gets a longer cross-fade.
    full = -(-(total - chunk) // align) * align
    if len(starts) > 1 and starts[-1] > full:
        starts[-1] = max(full, starts[-2] + align)
    out: torch.Tensor | None = None
    norm = torch.zeros(total, device=x.device, dtype=x.dtype)
    for i, start in enumerate(starts):
        end = min(start + chunk, total)
        lo, hi = max(0, start - context), min(total, end + context)
        y = fn(x[..., lo:hi])[..., start - lo : end - lo]
        if out is None:
            out = torch.zeros(*y.shape[:-1], total, device=y.device, dtype=y.dtype)
        overlap_prev = 0 if i == 0 else (starts[i - 1] + chunk) - start
        overlap_next = 0 if i == len(starts) - 1 else end - starts[i + 1]
        w = crossfade_weights(end - start, max(0, overlap_prev), max(0, overlap_next), x.device, y.dtype)
        out[..., start:end] += y * w
        norm[start:end] += w
    assert out is not None
    return out / norm.clamp_min(1e-8)
