"""Input checks shared by every metric: empty or non-finite audio is refused with a ``ValueError``.

A NaN sample makes most metrics NaN in every frame (BSSEval) or, worse, a plausible number (HAAQI), so the
metrics refuse it up front and say which argument, item/source, channel and sample hold it. The cost is
one ``torch.isfinite(x).all()`` per argument; the bad sample is located only on failure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from musicbench.audio.finite import first_nonfinite, nonfinite_message


def check_audio(
    x: torch.Tensor | np.ndarray,
    name: str,
    axes: Sequence[str] = ("channel", "sample"),
    allow_empty: bool = False,
) -> None:
    """Raise ``ValueError`` if ``x`` is empty (no samples) or holds NaN/±inf.

    Args:
        x: the audio argument, e.g. ``(..., channels, samples)``; the last dimensions are named by
            ``axes`` in the message, leading ones are called ``item``.
        name: the argument's name as the caller knows it (``"reference"``, ``"estimates"``).
        axes: names of the last dimensions of ``x``, e.g. ``("source", "channel", "sample")``.
        allow_empty: accept a tensor with no elements.
    """
    if not allow_empty and (x.shape[-1] == 0 if x.ndim else False):
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): there are no samples to score")
    index = first_nonfinite(x)
    if index is not None:
        raise ValueError(
            f"{name} contains {nonfinite_message(x, index, axes)}; metrics are undefined on non-finite audio"
        )


def check_pair(
    reference: torch.Tensor | np.ndarray,
    estimate: torch.Tensor | np.ndarray,
    names: tuple[str, str] = ("reference", "estimate"),
    axes: Sequence[str] = ("channel", "sample"),
) -> None:
    """:func:`check_audio` on both arguments of a reference/estimate metric (named by ``names``)."""
    check_audio(reference, names[0], axes)
    check_audio(estimate, names[1], axes)


def check_real_float(x: torch.Tensor, name: str) -> None:
    """Refuse integer/boolean audio: its scale is ambiguous (int16 full scale is 32768, int32 2**31), and a
    metric that calibrates levels (HAAQI: RMS 1 = ``level1`` dB SPL) would silently score it ~90 dB too loud.
    """
    if not x.is_floating_point():
        raise ValueError(
            f"{name} has dtype {x.dtype}: give float audio in [-1, 1] (e.g. int16 PCM / 32768, as "
            "soundfile.read(..., dtype='float32') returns it)"
        )


def check_finite_number(value: float, name: str) -> float:
    """``float(value)``, or ``ValueError`` naming ``name`` if it is NaN or ±inf."""
    out = float(value)
    if not np.isfinite(out):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return out
