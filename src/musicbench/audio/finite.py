"""Finiteness checks for audio: one cheap test, and the position of the first bad sample on failure.

A NaN or infinite sample spreads through every STFT, loss and metric it touches, so it is refused where
audio enters (file reading, the MP3 pair cache, metric inputs) with the place it was found. The check is
one ``torch.isfinite(x).all()`` per tensor; the first bad sample is located only when it fails.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from musicbench.errors import UserError


class NonFiniteAudioError(UserError, ValueError):
    """Audio holds NaN or ±inf; the message names where it came from and the first bad sample."""


def first_nonfinite(x: torch.Tensor | np.ndarray) -> tuple[int, ...] | None:
    """The index of the earliest NaN/±inf element of ``x`` along its last axis (time), the lowest leading
    index (item, channel) among equals, or ``None`` when all are finite.

    Integer and boolean arrays are always finite.
    """
    t = torch.as_tensor(x)
    if not (t.is_floating_point() or t.is_complex()):
        return None
    ok = torch.isfinite(t)
    if bool(ok.all()):
        return None
    if t.ndim == 0:
        return ()
    first = torch.nonzero(~ok.movedim(-1, 0))[0].tolist()  # (time, leading...): earliest in time first
    return (*(int(i) for i in first[1:]), int(first[0]))


def describe_position(
    index: Sequence[int], axes: Sequence[str] = ("channel", "sample"), offset: int = 0
) -> str:
    """``"channel 1, sample 4410"`` for ``index`` in a tensor whose last dimensions are named by ``axes``.

    Leading dimensions without a name are called ``item``; ``offset`` (samples) is added to the last index
    (the position of a chunk in its file).
    """
    index = list(index)
    if not index:
        return "the value"
    names = list(axes)[-len(index) :]
    names = ["item"] * (len(index) - len(names)) + names
    index[-1] += int(offset)
    return ", ".join(f"{name} {i}" for name, i in zip(names, index, strict=True))


def nonfinite_message(
    x: torch.Tensor | np.ndarray,
    index: Sequence[int],
    axes: Sequence[str] = ("channel", "sample"),
    offset: int = 0,
) -> str:
    """``"NaN at channel 0, sample 12 (3 non-finite values)"`` for the bad element ``index`` of ``x``."""
    t = torch.as_tensor(x)
    value = float(t[tuple(index)].real) if t.is_complex() else float(t[tuple(index)])
    count = int((~torch.isfinite(t)).sum())
    kind = "NaN" if np.isnan(value) else ("+inf" if value > 0 else "-inf")
    return (
        f"{kind} at {describe_position(index, axes, offset)} ({count} non-finite value{'s' * (count != 1)})"
    )


def check_finite(
    x: torch.Tensor | np.ndarray, what: str, axes: Sequence[str] = ("channel", "sample"), offset: int = 0
) -> None:
    """Raise :class:`NonFiniteAudioError` ``"<what> contains NaN at channel c, sample t ..."`` if ``x``
    holds a non-finite value.

    Args:
        x: audio, e.g. ``(channels, samples)``; the last dimensions are named by ``axes``.
        what: where the audio comes from (a file, a track, an argument), put first in the message.
        axes: names of the last dimensions of ``x``.
        offset: samples added to the reported sample index (the chunk's start in its file).
    """
    index = first_nonfinite(x)
    if index is not None:
        raise NonFiniteAudioError(f"{what} contains {nonfinite_message(x, index, axes, offset)}")
