"""The Bisgaard et al. (2010) standard audiograms and a seeded generator of listeners built from them.

Bisgaard, Vlaming and Dahlquist, "Standard audiograms for the IEC 60118-15 measurement procedure",
Trends in Amplification 14(2), 113-120 (2010), define ten standard audiograms from a large database of
clinical audiograms: seven flat / moderately sloping ones, N1 (very mild) to N7 (profound), and three
steeply sloping ones, S1 to S3. The thresholds below are in dB HL at the ten frequencies of the paper
(250 Hz ... 6 kHz).

Where the values come from: the paper's table (IEC 60118-15 uses the same audiograms). All ten rows were
compared, value for value, with several independent public implementations of the table (hearing-aid
research code and clinical audiometry software), which agree with each other and with these values;
the paper itself was not at hand. One row is also cross-checked by a test: pyclarity's
``AUDIOGRAM_MODERATE`` ("based on mild N2 flat/mod sloping from Bisgaard") equals N2 at every shared
frequency.

:data:`NORMAL_HEARING` (0 dB HL everywhere: audiometric zero) is not a Bisgaard audiogram; it gives the
listener generator a normal-hearing group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np

from musicbench.hearing.audiogram import DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES, Audiogram, Listener

# The frequencies (Hz) of the Bisgaard table.
BISGAARD_FREQUENCIES: Final = (250, 375, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000)

# Thresholds in dB HL at BISGAARD_FREQUENCIES.
BISGAARD_LEVELS: Final[Mapping[str, tuple[float, ...]]] = {
    "N1": (10, 10, 10, 10, 10, 10, 15, 20, 30, 40),
    "N2": (20, 20, 20, 22.5, 25, 30, 35, 40, 45, 50),
    "N3": (35, 35, 35, 35, 40, 45, 50, 55, 60, 65),
    "N4": (55, 55, 55, 55, 55, 60, 65, 70, 75, 80),
    "N5": (65, 67.5, 70, 72.5, 75, 80, 80, 80, 80, 80),
    "N6": (75, 77.5, 80, 82.5, 85, 90, 90, 95, 100, 100),
    "N7": (90, 92.5, 95, 100, 105, 105, 105, 105, 105, 105),
    "S1": (10, 10, 10, 10, 10, 10, 15, 30, 55, 70),
    "S2": (20, 20, 20, 22.5, 25, 35, 55, 75, 95, 95),
    "S3": (30, 30, 35, 47.5, 60, 70, 75, 80, 80, 85),
}

NORMAL_HEARING: Final = "NH"

# Severity groups, from pyclarity's categories (``Audiogram.severity``) of the better ear.
SEVERITY_GROUPS: Final = ("normal", "mild", "moderate", "severe")
_GROUP_OF_SEVERITY: Final = {"NOTHING": "normal", "MILD": "mild", "MODERATE": "moderate", "SEVERE": "severe"}

# Thresholds of a generated listener stay in this range (dB HL): what a clinical audiometer measures.
GENERATED_LEVEL_RANGE_DB_HL: Final = (-10.0, 120.0)


def standard_audiogram(name: str, frequencies: Sequence[float] | None = None) -> Audiogram:
    """The standard audiogram ``name`` (``"N1"`` ... ``"N7"``, ``"S1"`` ... ``"S3"`` or ``"NH"``).

    Args:
        name: the audiogram's name in Bisgaard et al. (2010), or :data:`NORMAL_HEARING`.
        frequencies: frequencies in Hz to give it at; default the table's own
            (:data:`BISGAARD_FREQUENCIES`). Others are interpolated on a log-frequency axis and held
            constant beyond 250 Hz and 6 kHz (``Audiogram.resample``, as pyclarity), so 8 kHz reads the
            6 kHz threshold.

    Returns:
        The audiogram, levels in dB HL.
    """
    if name == NORMAL_HEARING:
        audiogram = Audiogram(levels=np.zeros(len(BISGAARD_FREQUENCIES)), frequencies=BISGAARD_FREQUENCIES)
    elif name in BISGAARD_LEVELS:
        audiogram = Audiogram(levels=BISGAARD_LEVELS[name], frequencies=BISGAARD_FREQUENCIES)
    else:
        raise ValueError(
            f"unknown standard audiogram {name!r}; expected one of {[*BISGAARD_LEVELS, NORMAL_HEARING]}"
        )
    return audiogram if frequencies is None else audiogram.resample(frequencies)


def severity_group(listener: Listener) -> str:
    """``"normal"``, ``"mild"``, ``"moderate"`` or ``"severe"``: the listener's better ear.

    The better ear is the one with the lower ``Audiogram.severity`` (pyclarity's rule: the mean threshold
    over 2-8 kHz against 15, 35 and 56 dB HL); ``"NOTHING"`` is reported as ``"normal"``.
    """
    order = list(_GROUP_OF_SEVERITY)
    best = min((listener.audiogram_left.severity, listener.audiogram_right.severity), key=order.index)
    return _GROUP_OF_SEVERITY[best]


def _candidates(step_db: float, max_steps: int, frequencies: Sequence[float]) -> dict[str, list[str]]:
    """Standard audiograms per group whose group no variation within ``max_steps * step_db`` changes."""
    out: dict[str, list[str]] = {group: [] for group in SEVERITY_GROUPS}
    shift = step_db * max_steps
    for name in [NORMAL_HEARING, *BISGAARD_LEVELS]:
        base = standard_audiogram(name, frequencies)
        groups = {
            _GROUP_OF_SEVERITY[
                Audiogram(np.clip(base.levels + d, *GENERATED_LEVEL_RANGE_DB_HL), base.frequencies).severity
            ]
            for d in (-shift, 0.0, shift)
        }
        if len(groups) == 1:
            out[groups.pop()].append(name)
    return out


def generate_listeners(
    num_listeners: int,
    seed: int,
    *,
    first_id: int = 5001,
    prefix: str = "L",
    frequencies: Sequence[float] = DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES,
    step_db: float = 5.0,
    max_steps: int = 1,
) -> tuple[dict[str, Listener], dict[str, str], dict[str, str]]:
    """Seeded listeners built from the standard audiograms, covering every severity group.

    Listener ``i`` (id ``f"{prefix}{first_id + i:04d}"``) belongs to group ``SEVERITY_GROUPS[i % 4]``, so
    any four consecutive listeners cover normal, mild, moderate and severe. Its standard audiogram is a
    seeded choice among those of its group whose group no variation can change (N3, close to the
    moderate/severe boundary, is never chosen with the default step). Each ear then gets its own
    seeded variation: at every frequency a whole number of ``step_db`` steps in
    ``[-max_steps, max_steps]``, clipped to :data:`GENERATED_LEVEL_RANGE_DB_HL`.

    Args:
        num_listeners: how many listeners (>= 1).
        seed: the same seed (and arguments) gives the same listeners.
        first_id: number of the first listener id.
        prefix: listener ids start with it (Cadenza's ids are ``L5001``, ...).
        frequencies: audiogram frequencies in Hz; default the Clarity/Cadenza frequencies 250 Hz ... 8 kHz.
        step_db: variation step (dB).
        max_steps: largest variation, in steps, either way.

    Returns:
        ``(listeners, audiograms, groups)``: ``{id: Listener}`` in id order, ``{id: standard audiogram
        name}`` and ``{id: severity group}`` (:func:`severity_group` of the generated audiograms).
    """
    if num_listeners < 1:
        raise ValueError(f"num_listeners must be >= 1, got {num_listeners}")
    if step_db < 0 or max_steps < 0:
        raise ValueError(f"step_db and max_steps must be >= 0, got {step_db} and {max_steps}")
    candidates = _candidates(step_db, max_steps, frequencies)
    empty = [group for group, names in candidates.items() if not names]
    if empty:
        raise ValueError(
            f"no standard audiogram stays in group(s) {empty} under a variation of +-{step_db * max_steps} dB; "
            "use a smaller step_db or max_steps"
        )
    rng = np.random.default_rng(seed)
    listeners: dict[str, Listener] = {}
    names: dict[str, str] = {}
    groups: dict[str, str] = {}
    for i in range(num_listeners):
        listener_id = f"{prefix}{first_id + i:04d}"
        options = candidates[SEVERITY_GROUPS[i % len(SEVERITY_GROUPS)]]
        name = options[int(rng.integers(len(options)))]
        base = standard_audiogram(name, frequencies)
        ears = []
        for _ in ("left", "right"):
            steps = rng.integers(-max_steps, max_steps + 1, size=len(base.levels))
            levels = np.clip(base.levels + steps * step_db, *GENERATED_LEVEL_RANGE_DB_HL)
            ears.append(Audiogram(levels=levels, frequencies=base.frequencies))
        listener = Listener(id=listener_id, audiogram_left=ears[0], audiogram_right=ears[1])
        listeners[listener_id] = listener
        names[listener_id] = name
        groups[listener_id] = severity_group(listener)
    return listeners, names, groups
