import json
import math

import numpy as np
import pytest

museval = pytest.importorskip("museval")

from musicbench.evaluation.museval_json import from_museval, read_museval_dir, write_museval_dir  # noqa: E402
from musicbench.evaluation.results import aggregate  # noqa: E402


def _result(track, rng, nan_frames=()):
    frames = {}
    for source in ("vocals", "bass"):
        per = {m: rng.normal(5, 3, 7).round(5).tolist() for m in ("sdr", "sir", "sar", "isr")}
        for i in nan_frames:
            for m in per:
                per[m][i] = math.nan
        frames[source] = per
    scores = {s: {m: float(np.nanmedian(v)) for m, v in per.items()} for s, per in frames.items()}
    return {"track": track, "scores": {"model": scores}, "frames": {"model": frames}}


def test_written_files_aggregate_like_museval_evalstore(tmp_path):
    rng = np.random.default_rng(0)
    results = [_result("a", rng), _result("b", rng, nan_frames=(0, 3)), _result("c", rng)]
    write_museval_dir(results, tmp_path)
    store = museval.EvalStore()
    store.add_eval_dir(tmp_path)
    theirs = store.agg_frames_tracks_scores()
    ours = aggregate(results)["model"]["median"]
    for (target, metric), value in theirs.items():
        assert ours[target][metric.lower()] == pytest.approx(value, abs=1e-9)
    # And reading them back gives the same results.
    back = read_museval_dir(tmp_path)
    assert [r["track"] for r in back] == ["a", "b", "c"]
    again = aggregate(back)["model"]["median"]
    for source, vals in ours.items():
        assert again[source] == pytest.approx(vals)


def test_reads_museval_trackstore_json():
    store = museval.TrackStore(track_name="t", win=1, hop=1)
    store.add_target("vocals", {"SDR": [1.0, 2.0, 9.0], "SIR": [3.0] * 3, "SAR": [4.0] * 3, "ISR": [5.0] * 3})
    res = from_museval(json.loads(store.json), "t")
    assert res["scores"]["model"]["vocals"] == {"sdr": 2.0, "sir": 3.0, "sar": 4.0, "isr": 5.0}
    assert res["frames"]["model"]["vocals"]["sdr"] == [1.0, 2.0, 9.0]
