"""The Bisgaard standard audiograms and the seeded listener generator."""

from __future__ import annotations

import numpy as np
import pytest

from musicbench.hearing.audiogram import (
    DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES,
    Audiogram,
    Listener,
    load_listeners,
    save_listeners,
)
from musicbench.hearing.standard_audiograms import (
    BISGAARD_FREQUENCIES,
    BISGAARD_LEVELS,
    GENERATED_LEVEL_RANGE_DB_HL,
    NORMAL_HEARING,
    SEVERITY_GROUPS,
    generate_listeners,
    severity_group,
    standard_audiogram,
)


def test_table_has_the_ten_audiograms_rising_with_frequency():
    assert sorted(BISGAARD_LEVELS) == [f"N{i}" for i in range(1, 8)] + ["S1", "S2", "S3"]
    for name, levels in BISGAARD_LEVELS.items():
        assert len(levels) == len(BISGAARD_FREQUENCIES), name
        assert np.all(np.diff(levels) >= 0), name  # every standard audiogram slopes down (or is flat)
    # The N series gets worse from N1 to N7 at every frequency.
    for a, b in zip(range(1, 7), range(2, 8), strict=True):
        assert np.all(np.array(BISGAARD_LEVELS[f"N{b}"]) >= np.array(BISGAARD_LEVELS[f"N{a}"]))


def test_n2_matches_pyclarity_moderate_audiogram():
    # pyclarity's AUDIOGRAM_MODERATE is documented as "based on mild N2 flat/mod sloping from Bisgaard".
    from clarity.utils.audiogram import AUDIOGRAM_MODERATE

    ref_freqs = np.asarray(AUDIOGRAM_MODERATE.frequencies, dtype=float)
    ref_levels = np.asarray(AUDIOGRAM_MODERATE.levels, dtype=float)
    shared = [f for f in BISGAARD_FREQUENCIES if f in ref_freqs]
    assert len(shared) >= 8
    ours = dict(zip(BISGAARD_FREQUENCIES, BISGAARD_LEVELS["N2"], strict=True))
    for f in shared:
        assert ours[f] == ref_levels[ref_freqs == f][0], f


def test_standard_audiogram_resamples_and_holds_the_last_threshold():
    n3 = standard_audiogram("N3", DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES)
    assert n3.frequencies.tolist() == list(DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES)
    assert n3.levels[-1] == BISGAARD_LEVELS["N3"][-1]  # 8 kHz holds the 6 kHz value
    assert n3.levels[2] == BISGAARD_LEVELS["N3"][4]  # 1 kHz is a measured frequency: exact
    assert np.all(standard_audiogram(NORMAL_HEARING).levels == 0)
    with pytest.raises(ValueError, match="unknown standard audiogram 'N9'"):
        standard_audiogram("N9")


def test_listeners_are_seeded_and_cover_the_groups():
    a = generate_listeners(8, seed=3)
    b = generate_listeners(8, seed=3)
    c = generate_listeners(8, seed=4)
    assert [x.to_dict() for x in a[0].values()] == [x.to_dict() for x in b[0].values()]
    assert [x.to_dict() for x in a[0].values()] != [x.to_dict() for x in c[0].values()]
    listeners, names, groups = a
    assert list(listeners) == [f"L{5001 + i}" for i in range(8)]
    assert set(groups.values()) == set(SEVERITY_GROUPS)
    # Any four consecutive listeners cover the four groups, whatever the seed.
    for seed in range(20):
        _, _, g = generate_listeners(4, seed=seed)
        assert list(g.values()) == list(SEVERITY_GROUPS), seed
    for lid, listener in listeners.items():
        assert groups[lid] == severity_group(listener)


def test_listener_ears_vary_in_whole_steps_within_bounds():
    lo, hi = GENERATED_LEVEL_RANGE_DB_HL
    listeners, names, _ = generate_listeners(40, seed=0, step_db=5.0, max_steps=1)
    differ = 0
    for lid, listener in listeners.items():
        base = standard_audiogram(names[lid], DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES).levels
        for ear in (listener.audiogram_left, listener.audiogram_right):
            delta = ear.levels - base
            assert np.all(ear.levels >= lo) and np.all(ear.levels <= hi)
            clipped = (ear.levels == lo) | (ear.levels == hi)
            assert np.all(np.isin(delta[~clipped], (-5.0, 0.0, 5.0))), (lid, delta)
        differ += not np.array_equal(listener.audiogram_left.levels, listener.audiogram_right.levels)
    assert differ > 30  # the ears get their own variation


def test_listeners_round_trip_through_the_listeners_file(tmp_path):
    listeners, _, _ = generate_listeners(5, seed=1, first_id=6001)
    path = save_listeners(listeners, tmp_path / "listeners.json")
    assert load_listeners(path) == listeners


def test_severity_group_uses_the_better_ear():
    freqs = DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES
    severe = Audiogram(levels=[80] * len(freqs), frequencies=freqs)
    normal = Audiogram(levels=[0] * len(freqs), frequencies=freqs)
    assert severity_group(Listener("L1", severe, normal)) == "normal"
    assert severity_group(Listener("L1", severe, severe)) == "severe"


def test_impossible_variation_is_refused():
    with pytest.raises(ValueError, match="no standard audiogram stays in group"):
        generate_listeners(4, seed=0, step_db=5.0, max_steps=4)
