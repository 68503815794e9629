"""Audiograms and listeners: hearing thresholds in dB HL, the Cadenza/Clarity listeners JSON format.

The semantics follow pyclarity's ``clarity.utils.audiogram`` (``Audiogram.resample``, ``has_frequencies``,
``severity``, ``Listener.load_listener_dict``) so that the NAL-R filters and HAAQI scores built from these
objects match the reference; validation is stricter (finite values, errors naming the field and the file).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from musicbench.utils.files import write_json_atomic

# Centre frequencies (Hz) of the Clarity/Cadenza listener files and of the full standard audiogram.
DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES: Final = (250, 500, 1000, 2000, 3000, 4000, 6000, 8000)
FULL_STANDARD_AUDIOGRAM_FREQUENCIES: Final = (
    125,
    250,
    500,
    750,
    1000,
    1500,
    2000,
    3000,
    4000,
    6000,
    8000,
    10000,
    12000,
    14000,
    16000,
)

# Hearing thresholds outside this range (dB HL) are not measurements: audiometers go from -10 (or -20) to
# 120 dB HL. A value such as 500 is a typo or a unit mix-up, and would drive the ear models out of range.
LEVEL_RANGE_DB_HL: Final = (-20.0, 120.0)

# The keys of one listener in the Cadenza/Clarity listeners JSON files.
LISTENER_KEYS: Final = ("name", "audiogram_cfs", "audiogram_levels_l", "audiogram_levels_r")


def _as_readonly_vector(values: Any, field: str) -> np.ndarray:
    """``values`` as a read-only 1-D float64 array; errors name ``field``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{field} must be a sequence of numbers, got {values!r}") from err
    if array.ndim != 1:
        raise ValueError(f"{field} must be one-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = array[~np.isfinite(array)]
        raise ValueError(f"{field} must be finite, got {bad.tolist()} in {array.tolist()}")
    # Frozen dataclass + read-only arrays: an audiogram cannot be changed after validation.
    array.setflags(write=False)
    return array


def check_levels(levels: np.ndarray, frequencies: Sequence[float] | np.ndarray, field: str) -> None:
    """Raise ``ValueError`` naming ``field``, the frequency and the value of the first threshold outside
    :data:`LEVEL_RANGE_DB_HL` (or not finite)."""
    lo, hi = LEVEL_RANGE_DB_HL
    for freq, level in zip(np.asarray(frequencies, dtype=np.float64), np.asarray(levels), strict=True):
        if not lo <= float(level) <= hi:  # also catches NaN
            raise ValueError(
                f"{field}: {float(level):g} dB HL at {float(freq):g} Hz is outside [{lo:g}, {hi:g}] dB HL; "
                "hearing thresholds are in dB HL (0 = normal hearing)"
            )


# What an audiogram's levels or frequencies may be given as: numbers in a sequence, an array or a tensor.
Vector = Sequence[float] | np.ndarray | torch.Tensor


# init=False: the constructor takes any Vector and stores validated read-only float64 arrays.
@dataclass(frozen=True, eq=False, init=False)
class Audiogram:
    """The hearing thresholds of one ear.

    Attributes:
        levels: ``(n,)`` hearing thresholds in dB HL (float64, read-only).
        frequencies: ``(n,)`` centre frequencies in Hz, strictly increasing and positive (float64,
            read-only). Defaults to the Clarity frequencies 250 Hz ... 8 kHz.
    """

    levels: np.ndarray
    frequencies: np.ndarray

    def __init__(self, levels: Vector, frequencies: Vector = DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES) -> None:
        levels = _as_readonly_vector(levels, "Audiogram.levels")
        frequencies = _as_readonly_vector(frequencies, "Audiogram.frequencies")
        if len(frequencies) == 0:
            raise ValueError("Audiogram.frequencies must not be empty")
        if len(levels) != len(frequencies):
            raise ValueError(
                f"Audiogram.levels has {len(levels)} values but Audiogram.frequencies has "
                f"{len(frequencies)}: they must have the same length"
            )
        if np.any(frequencies <= 0):
            # Interpolation is on a log-frequency axis, where 0 Hz has no place.
            raise ValueError(f"Audiogram.frequencies must be positive (Hz), got {frequencies.tolist()}")
        if np.any(np.diff(frequencies) <= 0):
            raise ValueError(
                f"Audiogram.frequencies must be strictly increasing (Hz), got {frequencies.tolist()}"
            )
        check_levels(levels, frequencies, "Audiogram.levels")
        object.__setattr__(self, "levels", levels)
        object.__setattr__(self, "frequencies", frequencies)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Audiogram):
            return NotImplemented
        return np.array_equal(self.levels, other.levels) and np.array_equal(
            self.frequencies, other.frequencies
        )

    def __hash__(self) -> int:
        return hash((self.levels.tobytes(), self.frequencies.tobytes()))

    @property
    def severity(self) -> str:
        """``"SEVERE"``, ``"MODERATE"``, ``"MILD"`` or ``"NOTHING"``, as pyclarity categorises it.

        The mean threshold over the frequencies in [2 kHz, 8 kHz] is compared with 56, 35 and 15 dB HL
        (strictly greater than); an audiogram with no frequency in that range counts as 0 dB HL.
        """
        critical = self.levels[(self.frequencies >= 2000) & (self.frequencies <= 8000)]
        degree = float(np.mean(critical)) if len(critical) > 0 else 0.0
        if degree > 56.0:
            return "SEVERE"
        if degree > 35.0:
            return "MODERATE"
        if degree > 15.0:
            return "MILD"
        return "NOTHING"

    def has_frequencies(self, frequencies: Sequence[float] | np.ndarray) -> bool:
        """Whether every one of ``frequencies`` (Hz) is measured (exactly) in this audiogram."""
        return bool(np.all(np.isin(np.asarray(frequencies, dtype=np.float64), self.frequencies)))

    def resample(
        self, new_frequencies: Sequence[float] | np.ndarray, linear_frequency: bool = False
    ) -> Audiogram:
        """The audiogram at ``new_frequencies`` (Hz), interpolated linearly on a log-frequency axis.

        As pyclarity's ``Audiogram.resample``: piecewise-linear in ``log(f)`` (or in ``f`` when
        ``linear_frequency``), constant beyond the first and last measured frequencies.
        """
        new = _as_readonly_vector(new_frequencies, "new_frequencies")
        axis = (lambda f: f) if linear_frequency else np.log
        # np.interp is exactly what pyclarity calls; keep it so the levels match bit for bit.
        levels = np.interp(axis(new), axis(self.frequencies), self.levels)
        return Audiogram(levels=levels, frequencies=new)

    def to_tensor(
        self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(levels, frequencies)`` as ``(n,)`` tensors (dB HL, Hz)."""
        return (
            torch.as_tensor(self.levels.copy(), dtype=dtype, device=device),
            torch.as_tensor(self.frequencies.copy(), dtype=dtype, device=device),
        )


def interpolate_levels(
    levels: torch.Tensor,
    frequencies: Vector,
    new_frequencies: Vector,
    linear_frequency: bool = False,
) -> torch.Tensor:
    """Batched ``Audiogram.resample``: thresholds at ``new_frequencies`` for many audiograms at once.

    Same arithmetic as ``np.interp`` (which pyclarity uses): ``slope * (x - x[j]) + y[j]`` on the
    segment ``x[j] <= x < x[j+1]``, the exact level at a measured frequency and constant extrapolation.

    Args:
        levels: ``(..., n)`` thresholds in dB HL, any device.
        frequencies: ``(n,)`` measured frequencies in Hz, strictly increasing, shared by the batch.
        new_frequencies: ``(m,)`` frequencies in Hz to interpolate at.
        linear_frequency: interpolate on a linear rather than a log frequency axis.

    Returns:
        ``(..., m)`` thresholds in dB HL, in the dtype and on the device of ``levels``.
    """
    # The frequency axis is shared by the batch: compute positions with numpy on the CPU (tiny) and
    # keep only the level-dependent arithmetic in torch.
    xp = _as_readonly_vector(frequencies, "frequencies")
    x = _as_readonly_vector(new_frequencies, "new_frequencies")
    if levels.shape[-1:] != (len(xp),):
        raise ValueError(
            f"levels has shape {tuple(levels.shape)} but there are {len(xp)} frequencies: "
            "the last dimension must match"
        )
    if np.any(np.diff(xp) <= 0):
        raise ValueError(f"frequencies must be strictly increasing (Hz), got {xp.tolist()}")
    if not linear_frequency:
        if np.any(xp <= 0) or np.any(x <= 0):
            raise ValueError("frequencies must be positive (Hz) for log-frequency interpolation")
        xp, x = np.log(xp), np.log(x)
    if len(xp) == 1:
        return levels[..., :1].expand(*levels.shape[:-1], len(x)).clone()
    j = np.clip(np.searchsorted(xp, x, side="right") - 1, 0, len(xp) - 2)
    jt = torch.as_tensor(j, device=levels.device)
    y_lo = levels[..., jt]
    y_hi = levels[..., jt + 1]
    dx = torch.as_tensor(xp[j + 1] - xp[j], dtype=levels.dtype, device=levels.device)
    offset = torch.as_tensor(x - xp[j], dtype=levels.dtype, device=levels.device)
    out = (y_hi - y_lo) / dx * offset + y_lo
    # np.interp's special cases: exact value on a measured frequency, constant outside the range.
    exact = torch.as_tensor(x == xp[j], device=levels.device)
    out = torch.where(exact, y_lo, out)
    out = torch.where(torch.as_tensor(x < xp[0], device=levels.device), levels[..., :1], out)
    out = torch.where(torch.as_tensor(x >= xp[-1], device=levels.device), levels[..., -1:], out)
    return out


@dataclass(frozen=True)
class Listener:
    """A listener: an id and the audiograms of the left and right ears."""

    id: str
    audiogram_left: Audiogram
    audiogram_right: Audiogram

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"Listener.id must be a non-empty string, got {self.id!r}")
        for side in ("audiogram_left", "audiogram_right"):
            if not isinstance(getattr(self, side), Audiogram):
                raise TypeError(f"Listener {self.id}: {side} must be an Audiogram")

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any], where: str = "") -> Listener:
        """A listener from one entry of a listeners JSON file (keys as in ``LISTENER_KEYS``).

        ``where`` is prefixed to error messages (e.g. the file and the listener's key).
        """
        prefix = f"{where}: " if where else ""
        if not isinstance(entry, Mapping):
            raise ValueError(f"{prefix}entry must be a JSON object, got {type(entry).__name__}")
        missing = [key for key in LISTENER_KEYS if key not in entry]
        if missing:
            raise ValueError(f"{prefix}missing key(s) {missing} (expected {list(LISTENER_KEYS)})")
        name = entry["name"]
        if not isinstance(name, str) or not name:
            raise ValueError(f"{prefix}'name' must be a non-empty string, got {name!r}")
        values = {key: _numbers(entry[key], f"{prefix}'{key}'") for key in LISTENER_KEYS[1:]}
        cfs = values["audiogram_cfs"]
        for key in ("audiogram_levels_l", "audiogram_levels_r"):
            if len(values[key]) != len(cfs):
                raise ValueError(
                    f"{prefix}'{key}' has {len(values[key])} values but 'audiogram_cfs' has {len(cfs)}"
                )
        try:
            left = Audiogram(levels=values["audiogram_levels_l"], frequencies=cfs)
            right = Audiogram(levels=values["audiogram_levels_r"], frequencies=cfs)
        except ValueError as err:
            raise ValueError(f"{prefix}'audiogram_cfs': {err}") from err
        return cls(id=name, audiogram_left=left, audiogram_right=right)

    def to_dict(self) -> dict[str, Any]:
        """The listener as one entry of a listeners JSON file (both ears share ``audiogram_cfs``)."""
        if not np.array_equal(self.audiogram_left.frequencies, self.audiogram_right.frequencies):
            raise ValueError(
                f"Listener {self.id}: the left and right audiograms have different frequencies "
                f"({self.audiogram_left.frequencies.tolist()} vs {self.audiogram_right.frequencies.tolist()}); "
                "the listeners JSON format has one 'audiogram_cfs' for both ears"
            )
        return {
            "name": self.id,
            "audiogram_cfs": [_json_number(f) for f in self.audiogram_left.frequencies],
            "audiogram_levels_l": [_json_number(v) for v in self.audiogram_left.levels],
            "audiogram_levels_r": [_json_number(v) for v in self.audiogram_right.levels],
        }


def _numbers(values: Any, field: str) -> list[float]:
    """A JSON list of numbers as floats; bools, strings, nulls and NaN/inf are errors naming ``field``."""
    if not isinstance(values, list):
        raise ValueError(f"{field} must be a list of numbers, got {type(values).__name__}")
    out = []
    for i, value in enumerate(values):
        # bool is an int in Python but never a threshold or a frequency.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{field}[{i}] must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{field}[{i}] must be finite, got {value!r}")
        out.append(float(value))
    return out


def _json_number(value: float) -> int | float:
    # Cadenza files write integral thresholds as 20, not 20.0: keep saved files looking like theirs.
    value = float(value)
    return int(value) if value.is_integer() else value


def load_listeners(path: str | os.PathLike[str]) -> dict[str, Listener]:
    """Read a Cadenza/Clarity listeners JSON file into ``{id: Listener}``.

    The file maps each listener id to ``{"name": id, "audiogram_cfs": [Hz...], "audiogram_levels_l":
    [dB HL...], "audiogram_levels_r": [dB HL...]}``. Errors name the file, the listener and the field.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by listener id, got {type(raw).__name__}")
    listeners = {}
    for key, entry in raw.items():
        listener = Listener.from_dict(entry, where=f"{path}: listener {key!r}")
        if listener.id != key:
            raise ValueError(f"{path}: listener {key!r}: 'name' is {listener.id!r}, expected the key {key!r}")
        listeners[key] = listener
    return listeners


def save_listeners(
    listeners: Mapping[str, Listener] | Iterable[Listener], path: str | os.PathLike[str]
) -> Path:
    """Write listeners to a Cadenza/Clarity listeners JSON file, atomically; returns the path.

    ``listeners`` is ``{id: Listener}`` (keys must equal the ids) or an iterable of listeners.
    """
    if isinstance(listeners, Mapping):
        items = list(listeners.items())
        for key, listener in items:
            if key != listener.id:
                raise ValueError(f"save_listeners: key {key!r} holds listener {listener.id!r}")
    else:
        items = [(listener.id, listener) for listener in listeners]
        ids = [key for key, _ in items]
        if len(set(ids)) != len(ids):
            raise ValueError(f"save_listeners: duplicate listener ids in {ids}")
    return write_json_atomic(path, {key: listener.to_dict() for key, listener in items})
