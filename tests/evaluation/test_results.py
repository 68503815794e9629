"""The results schema: track values, loading per-track results, aggregation, scores.csv, summary.json."""

import csv
import json
import math

import pytest

from musicbench.evaluation.results import (
    SCHEMA_VERSION,
    aggregate,
    aggregate_summary,
    load_results,
    track_value,
    write_scores_csv,
    write_summary,
)


def _result(track, value, wall=1.0):
    return {
        "track": track,
        "scores": {"model": {"a": {"sdr": value}}, "mixture": {"a": {"sdr": value - 5}}},
        "notes": [f"{track}/note"],
        "wall_time_s": wall,
    }


def test_track_value_is_median_over_finite_frames_and_aggregate_counts():
    assert track_value([1.0, float("nan"), 3.0, 10.0]) == 3.0
    assert math.isnan(track_value([float("nan")]))
    agg = aggregate([{"scores": {"m": {"s": {"sdr": v}}}} for v in (1.0, 2.0, 9.0, float("nan"))])
    assert agg["m"]["median"]["s"]["sdr"] == 2.0
    assert agg["m"]["mean"]["s"]["sdr"] == 4.0
    assert agg["m"]["num_tracks"]["s"]["sdr"] == 3


def test_track_value_of_a_scalar_is_the_scalar():
    assert track_value(2.5) == 2.5
    assert track_value((1.0, 2.0, 3.0)) == 2.0


def test_aggregate_of_all_nan_is_nan_with_no_tracks():
    agg = aggregate([{"scores": {"m": {"s": {"sdr": float("nan")}}}}])
    assert math.isnan(agg["m"]["median"]["s"]["sdr"]) and agg["m"]["num_tracks"]["s"]["sdr"] == 0


def test_load_results_skips_temporaries_and_names_a_corrupt_file(tmp_path):
    (tmp_path / "t1.json").write_text(json.dumps(_result("t1", 1.0)))
    (tmp_path / ".t2.abc.tmp.json").write_text("{ half written")
    assert list(load_results(tmp_path)) == ["t1"]
    (tmp_path / "t3.json").write_text("{ broken")
    with pytest.raises(ValueError, match=r"t3\.json.*delete it"):
        load_results(tmp_path)
    assert load_results(tmp_path / "missing") == {}


def test_scores_csv_has_one_row_per_track_and_a_column_per_value(tmp_path):
    path = write_scores_csv([_result("t1", 1.0), _result("t2", 2.0)], tmp_path / "scores.csv")
    rows = list(csv.DictReader(path.open()))
    assert [r["track"] for r in rows] == ["t1", "t2"]
    assert list(rows[0]) == ["track", "model/a/sdr", "mixture/a/sdr"]
    assert float(rows[1]["mixture/a/sdr"]) == -3.0


def test_summary_sums_track_times_keeps_notes_and_is_written(tmp_path):
    results = [_result("t1", 1.0, wall=1.5), _result("t2", 3.0, wall=2.0)]
    summary = aggregate_summary(results, digest="d", split="test")
    assert summary["schema_version"] == SCHEMA_VERSION and summary["digest"] == "d"
    assert summary["num_tracks"] == 2 and summary["tracks"] == ["t1", "t2"]
    assert summary["wall_time_s"] == 3.5
    assert summary["notes"] == ["t1/note", "t2/note"]
    assert summary["systems"]["model"]["median"]["a"]["sdr"] == 2.0
    written = write_summary(tmp_path / "summary.json", results, digest="d", split="test")
    assert json.loads((tmp_path / "summary.json").read_text()) == written == summary
