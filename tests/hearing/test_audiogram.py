import dataclasses
import json

import numpy as np
import pytest
import torch
from clarity.utils.audiogram import Audiogram as ClarityAudiogram
from clarity.utils.audiogram import Listener as ClarityListener

from musicbench.hearing.audiogram import (
    DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES,
    FULL_STANDARD_AUDIOGRAM_FREQUENCIES,
    Audiogram,
    Listener,
    interpolate_levels,
    load_listeners,
    save_listeners,
)

CFS = list(DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES)
# Normal, mild, moderate, severe, sloping, with non-integer and negative thresholds.
LEVELS = {
    "normal": [0, 0, 0, 0, 0, 0, 0, 0],
    "mild": [10, 15, 20, 25, 30, 30, 35, 40],
    "moderate": [30, 35, 40, 45, 50, 55, 60, 65],
    "severe": [60, 70, 80, 90, 90, 95, 100, 105],
    "sloping": [-5, 0, 10.5, 20, 40, 62.5, 70, 80],
    "borderline": [15, 15, 15, 15, 15, 15, 15, 15],
}
# Below, between, on and above the measured frequencies.
NEW_FREQUENCIES = [
    [250, 500, 1000, 2000, 4000, 6000],
    [100, 125, 300, 750, 1500, 2500, 3000, 7000, 8000, 10000, 16000],
    list(FULL_STANDARD_AUDIOGRAM_FREQUENCIES),
]


def test_validation_names_the_field():
    with pytest.raises(ValueError, match="Audiogram.levels has 3 values but Audiogram.frequencies has 8"):
        Audiogram(levels=[1, 2, 3])
    with pytest.raises(ValueError, match="strictly increasing"):
        Audiogram(levels=[1, 2, 3], frequencies=[250, 1000, 500])
    with pytest.raises(ValueError, match="strictly increasing"):
        Audiogram(levels=[1, 2, 3], frequencies=[250, 500, 500])
    with pytest.raises(ValueError, match=r"Audiogram.levels must be finite, got \[nan\]"):
        Audiogram(levels=[1, float("nan"), 3], frequencies=[250, 500, 1000])
    with pytest.raises(ValueError, match="Audiogram.frequencies must be finite"):
        Audiogram(levels=[1, 2, 3], frequencies=[250, 500, float("inf")])
    with pytest.raises(ValueError, match="Audiogram.frequencies must be positive"):
        Audiogram(levels=[1, 2], frequencies=[0, 500])
    with pytest.raises(ValueError, match="Audiogram.levels must be one-dimensional"):
        Audiogram(levels=[[1, 2]], frequencies=[250, 500])
    with pytest.raises(ValueError, match="Audiogram.levels must be a sequence of numbers"):
        Audiogram(levels=["a", 2], frequencies=[250, 500])
    with pytest.raises(ValueError, match="must not be empty"):
        Audiogram(levels=[], frequencies=[])


def test_audiogram_is_frozen_and_compares_by_value():
    a = Audiogram(levels=LEVELS["mild"], frequencies=CFS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.levels = np.zeros(8)
    with pytest.raises(ValueError, match="read-only"):
        a.levels[0] = 99.0
    assert a.levels.dtype == np.float64 and a.frequencies.dtype == np.float64
    assert a == Audiogram(levels=np.array(LEVELS["mild"], dtype=float), frequencies=torch.tensor(CFS))
    assert a != Audiogram(levels=LEVELS["moderate"], frequencies=CFS)
    assert hash(a) == hash(Audiogram(levels=LEVELS["mild"], frequencies=CFS))
    levels, freqs = a.to_tensor()
    assert levels.dtype == torch.float64 and levels.tolist() == LEVELS["mild"] and freqs.tolist() == CFS


@pytest.mark.parametrize("linear_frequency", [False, True])
def test_resample_matches_pyclarity(linear_frequency):
    for levels in LEVELS.values():
        ours = Audiogram(levels=levels, frequencies=CFS)
        theirs = ClarityAudiogram(levels=np.array(levels), frequencies=np.array(CFS))
        for new in NEW_FREQUENCIES:
            expected = theirs.resample(np.array(new), linear_frequency=linear_frequency).levels
            resampled = ours.resample(new, linear_frequency=linear_frequency)
            np.testing.assert_array_equal(resampled.levels, expected)
            np.testing.assert_array_equal(resampled.frequencies, new)


@pytest.mark.parametrize("linear_frequency", [False, True])
def test_batched_torch_interpolation_matches_pyclarity(linear_frequency):
    levels = torch.tensor(list(LEVELS.values()), dtype=torch.float64).reshape(2, 3, len(CFS))
    for new in NEW_FREQUENCIES:
        out = interpolate_levels(levels, CFS, new, linear_frequency=linear_frequency)
        assert out.shape == (2, 3, len(new))
        expected = np.stack(
            [
                ClarityAudiogram(levels=np.array(row), frequencies=np.array(CFS))
                .resample(np.array(new), linear_frequency=linear_frequency)
                .levels
                for row in levels.reshape(-1, len(CFS)).numpy()
            ]
        ).reshape(2, 3, len(new))
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-14, atol=1e-12)
        # Measured frequencies come back exactly, as with np.interp.
        on_grid = [i for i, f in enumerate(new) if f in CFS]
        np.testing.assert_array_equal(out.numpy()[..., on_grid], expected[..., on_grid])


def test_interpolate_levels_errors_and_single_frequency():
    with pytest.raises(ValueError, match="last dimension must match"):
        interpolate_levels(torch.zeros(3, 5), CFS, [1000])
    with pytest.raises(ValueError, match="strictly increasing"):
        interpolate_levels(torch.zeros(2), [500, 250], [1000])
    out = interpolate_levels(torch.tensor([[7.0], [9.0]]), [1000], [250, 1000, 8000])
    assert out.tolist() == [[7.0] * 3, [9.0] * 3]


def test_has_frequencies_and_severity_match_pyclarity():
    queries = [[250, 1000], [250, 1500], CFS, [8000], [125]]
    for levels in LEVELS.values():
        ours = Audiogram(levels=levels, frequencies=CFS)
        theirs = ClarityAudiogram(levels=np.array(levels), frequencies=np.array(CFS))
        assert ours.severity == theirs.severity
        for q in queries:
            assert ours.has_frequencies(q) == bool(theirs.has_frequencies(np.array(q)))
    # Every category is reached, and an audiogram with no 2-8 kHz frequency counts as no loss.
    assert {Audiogram(levels=v, frequencies=CFS).severity for v in LEVELS.values()} == {
        "NOTHING",
        "MILD",
        "MODERATE",
        "SEVERE",
    }
    assert Audiogram(levels=[90, 90], frequencies=[250, 500]).severity == "NOTHING"


def _listeners_json():
    return {
        "L0001": {
            "name": "L0001",
            "audiogram_cfs": CFS,
            "audiogram_levels_l": LEVELS["mild"],
            "audiogram_levels_r": LEVELS["sloping"],
        },
        "L0002": {
            "name": "L0002",
            "audiogram_cfs": CFS,
            "audiogram_levels_l": LEVELS["severe"],
            "audiogram_levels_r": LEVELS["normal"],
        },
    }


def test_load_matches_pyclarity_and_round_trips(tmp_path):
    path = tmp_path / "listeners.json"
    path.write_text(json.dumps(_listeners_json()))
    listeners = load_listeners(path)
    theirs = ClarityListener.load_listener_dict(path)
    assert list(listeners) == list(theirs) == ["L0001", "L0002"]
    for key, listener in listeners.items():
        assert listener.id == theirs[key].id == key
        for side in ("audiogram_left", "audiogram_right"):
            np.testing.assert_array_equal(getattr(listener, side).levels, getattr(theirs[key], side).levels)
            np.testing.assert_array_equal(
                getattr(listener, side).frequencies, getattr(theirs[key], side).frequencies
            )
    out = tmp_path / "sub" / "saved.json"
    assert save_listeners(listeners, out) == out
    assert load_listeners(out) == listeners
    # Integral values are written as in Cadenza's files (20, not 20.0): the JSON is the same.
    assert json.loads(out.read_text()) == _listeners_json()
    assert [p.name for p in out.parent.iterdir()] == ["saved.json"]  # no temporary file left behind
    save_listeners(list(listeners.values()), out)
    assert load_listeners(out) == listeners


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["L0002"].pop("audiogram_levels_r"),
            r"listener 'L0002'.*missing key.*audiogram_levels_r",
        ),
        (lambda d: d["L0002"].pop("name"), r"listener 'L0002'.*missing key.*name"),
        (
            lambda d: d["L0002"]["audiogram_levels_l"].pop(),
            r"listener 'L0002'.*'audiogram_levels_l' has 7 values",
        ),
        (
            lambda d: d["L0002"]["audiogram_levels_r"].__setitem__(3, "loud"),
            r"listener 'L0002'.*'audiogram_levels_r'\[3\] must be a number, got 'loud'",
        ),
        (
            lambda d: d["L0002"]["audiogram_levels_l"].__setitem__(0, None),
            r"listener 'L0002'.*'audiogram_levels_l'\[0\] must be a number, got None",
        ),
        (
            lambda d: d["L0002"]["audiogram_levels_l"].__setitem__(1, True),
            r"'audiogram_levels_l'\[1\] must be a number, got True",
        ),
        (
            lambda d: d["L0002"]["audiogram_levels_r"].__setitem__(2, float("nan")),
            r"listener 'L0002'.*'audiogram_levels_r'\[2\] must be finite, got nan",
        ),
        (lambda d: d["L0002"].__setitem__("audiogram_cfs", 250), r"'audiogram_cfs' must be a list"),
        (
            lambda d: d["L0002"]["audiogram_cfs"].reverse(),
            r"listener 'L0002'.*'audiogram_cfs'.*strictly increasing",
        ),
        (lambda d: d["L0002"].__setitem__("name", "L0003"), r"listener 'L0002'.*'name' is 'L0003'"),
        (lambda d: d.__setitem__("L0002", [1, 2]), r"listener 'L0002'.*must be a JSON object"),
    ],
)
def test_malformed_entries_name_file_listener_and_field(tmp_path, edit, message):
    data = json.loads(json.dumps(_listeners_json()))
    edit(data)
    path = tmp_path / "listeners.json"
    path.write_text(json.dumps(data))  # json writes NaN as the NaN literal, which json.load reads back
    with pytest.raises(ValueError, match=message) as info:
        load_listeners(path)
    assert str(path) in str(info.value)


def test_malformed_files(tmp_path):
    path = tmp_path / "listeners.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object keyed by listener id"):
        load_listeners(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_listeners(path)


def test_save_rejects_what_the_format_cannot_hold(tmp_path):
    left = Audiogram(levels=LEVELS["mild"], frequencies=CFS)
    right = Audiogram(levels=[1, 2, 3], frequencies=[500, 1000, 2000])
    with pytest.raises(
        ValueError, match="Listener L9: the left and right audiograms have different frequencies"
    ):
        save_listeners([Listener("L9", left, right)], tmp_path / "x.json")
    with pytest.raises(ValueError, match="key 'A' holds listener 'L1'"):
        save_listeners({"A": Listener("L1", left, left)}, tmp_path / "x.json")
    with pytest.raises(ValueError, match="duplicate listener ids"):
        save_listeners([Listener("L1", left, left)] * 2, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
