import csv
import json
import math
from dataclasses import dataclass

import pytest
import torch

from musicbench.evaluation.runner import Evaluator
from musicbench.metrics.sdr import global_sdr, snr


@dataclass
class FakeTrack:
    name: str
    seed: int
    sources: tuple = ("a", "b")
    sample_rate: int = 8000

    def load(self):
        g = torch.Generator().manual_seed(self.seed)
        targets = torch.randn(2, 2, 4000, generator=g)
        if self.name == "silent-b":
            targets[1] = 0
        return targets.sum(0), targets


def _noisy_estimate(noise):
    def fn(mixture, name=""):
        g = torch.Generator().manual_seed(int(mixture.abs().sum() * 1000) % 2**31)
        # A fake "model": the mixture scaled, plus noise (deterministic per input).
        return torch.stack([0.5 * mixture, 0.5 * mixture]) + noise * torch.randn(
            2, *mixture.shape, generator=g
        )

    return fn


def _evaluator(progress=False):
    return Evaluator({"global_sdr": global_sdr, "snr": snr}, progress=progress)


def test_writes_schema_and_mixture_baseline(tmp_path):
    tracks = [FakeTrack("t1", 1), FakeTrack("t2", 2), FakeTrack("t3", 3)]
    summary = _evaluator().evaluate(tracks, _noisy_estimate(0.1), tmp_path, digest="d1")
    for t in tracks:
        res = json.loads((tmp_path / "results" / f"{t.name}.json").read_text())
        mixture, targets = t.load()
        assert set(res["scores"]) == {"model", "mixture"}
        expected = global_sdr(targets, mixture.expand_as(targets))
        assert res["scores"]["mixture"]["a"]["global_sdr"] == pytest.approx(expected[0].item())
    assert summary["num_tracks"] == 3
    med = summary["systems"]["mixture"]["median"]["b"]["global_sdr"]
    vals = [
        json.loads((tmp_path / "results" / f"{t.name}.json").read_text())["scores"]["mixture"]["b"][
            "global_sdr"
        ]
        for t in tracks
    ]
    assert med == pytest.approx(sorted(vals)[1])
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["systems"] == summary["systems"]
    rows = list(csv.DictReader((tmp_path / "scores.csv").open()))
    assert [r["track"] for r in rows] == ["t1", "t2", "t3"]
    assert float(rows[0]["model/a/snr"]) == pytest.approx(
        json.loads((tmp_path / "results" / "t1.json").read_text())["scores"]["model"]["a"]["snr"]
    )


def test_rerun_skips_finished_tracks_and_recomputes_other_digest(tmp_path):
    tracks = [FakeTrack("t1", 1), FakeTrack("t2", 2)]
    ev = _evaluator()
    ev.evaluate(tracks, _noisy_estimate(0.1), tmp_path, digest="d1")
    path = tmp_path / "results" / "t1.json"
    first = path.read_text()
    calls = []

    def counting(m, name):
        calls.append(1)
        return _noisy_estimate(0.1)(m)

    ev.evaluate(tracks, counting, tmp_path, digest="d1")
    assert calls == [] and path.read_text() == first
    ev.evaluate(tracks, _noisy_estimate(0.5), tmp_path, digest="d2")
    assert json.loads(path.read_text())["digest"] == "d2" and path.read_text() != first


def test_nonfinite_scores_come_with_a_reason(tmp_path):
    summary = _evaluator().evaluate([FakeTrack("silent-b", 4)], _noisy_estimate(0.1), tmp_path, digest="x")
    res = json.loads((tmp_path / "results" / "silent-b.json").read_text())
    assert not math.isfinite(res["scores"]["model"]["b"]["snr"])
    assert any("b/snr" in n and "silent" in n for n in res["notes"])
    assert summary["notes"]
    # -inf is kept in the aggregate (as museval's pandas medians keep it); only NaN is skipped.
    assert summary["systems"]["model"]["median"]["b"]["snr"] == -math.inf


def test_shape_mismatch_names_the_track(tmp_path):
    with pytest.raises(ValueError, match="t1"):
        _evaluator().evaluate([FakeTrack("t1", 1)], lambda m, name: m.unsqueeze(0), tmp_path, digest="x")


def test_evaluator_rejects_bad_settings():
    with pytest.raises(ValueError, match="input_baseline='model' is not free"):
        Evaluator({"snr": snr}, input_baseline="model")
    with pytest.raises(ValueError, match="empty"):
        Evaluator({})


def test_a_metric_that_raises_gives_nan_with_the_reason(tmp_path):
    def picky(reference, estimate):
        raise ValueError("reference source 1 is silent over the whole track")

    ev = Evaluator({"global_sdr": global_sdr, "picky": picky}, progress=False)
    ev.evaluate([FakeTrack("t1", 1)], _noisy_estimate(0.1), tmp_path, digest="x")
    res = json.loads((tmp_path / "results" / "t1.json").read_text())
    assert math.isnan(res["scores"]["model"]["a"]["picky"])
    assert math.isfinite(res["scores"]["model"]["a"]["global_sdr"])
    assert any("picky=nan: reference source 1 is silent" in n for n in res["notes"])


def test_input_baseline_is_the_mixture_under_another_name(tmp_path):
    tracks = [FakeTrack("t1", 1), FakeTrack("t2", 2)]
    ev = Evaluator({"global_sdr": global_sdr, "snr": snr}, input_baseline="input", progress=False)
    summary = ev.evaluate(tracks, _noisy_estimate(0.1), tmp_path / "in", digest="d")
    ref = _evaluator().evaluate(tracks, _noisy_estimate(0.1), tmp_path / "mix", digest="d")
    assert set(summary["systems"]) == {"model", "input"}
    assert summary["systems"]["input"]["median"] == ref["systems"]["mixture"]["median"]
    assert summary["input_baseline"] == "input" and ref["input_baseline"] == "mixture"
    with pytest.raises(ValueError, match="sample_<k> name the model's systems"):
        Evaluator({"snr": snr}, input_baseline="sample_3")
    none = Evaluator({"snr": snr}, input_baseline=None, progress=False)
    assert set(none.evaluate(tracks, _noisy_estimate(0.1), tmp_path / "none", digest="d")["systems"]) == {
        "model"
    }


def test_stochastic_systems_best_of_k_and_diversity(tmp_path):
    """Several seeded estimates per track: each is scored, plus best-of-K and the pairwise diversity."""

    def samples(mixture, name):
        out = {f"sample_{k}": _noisy_estimate(0.1 * (k + 1))(mixture) for k in range(3)}
        out["mean"] = torch.stack(list(out.values())).mean(0)
        return out

    ev = Evaluator(
        {"snr": snr, "neg": lambda r, e: -snr(r, e)}, lower_is_better=["neg"], diversity={"snr": snr},
        progress=False,
    )  # fmt: skip
    ev.evaluate([FakeTrack("t1", 1)], samples, tmp_path, digest="x")
    res = json.loads((tmp_path / "results" / "t1.json").read_text())
    assert set(res["scores"]) == {
        "sample_0",
        "sample_1",
        "sample_2",
        "mean",
        "mixture",
        "best_of_k",
        "diversity",
    }
    for source in ("a", "b"):
        per = [res["scores"][f"sample_{k}"][source] for k in range(3)]
        assert res["scores"]["best_of_k"][source]["snr"] == max(p["snr"] for p in per)
        assert res["scores"]["best_of_k"][source]["neg"] == min(p["neg"] for p in per)
        mixture, _ = FakeTrack("t1", 1).load()
        est = [samples(mixture, "t1")[f"sample_{k}"] for k in range(3)]
        pairs = [snr(est[i], est[j])[("a", "b").index(source)] for i, j in ((0, 1), (0, 2), (1, 2))]
        assert res["scores"]["diversity"][source]["pairwise_snr"] == pytest.approx(float(sum(pairs) / 3))
    with pytest.raises(ValueError, match="sample_1"):
        ev.evaluate(
            [FakeTrack("t2", 2)], lambda m, n: {"sample_0": samples(m, n)["sample_0"], "sample_1": m[None]},
            tmp_path / "bad", digest="x",
        )  # fmt: skip


def test_a_track_whose_data_changed_is_evaluated_again_the_others_reused(tmp_path):
    ev = _evaluator()
    ev.evaluate(
        [FakeTrack("t1", 1), FakeTrack("t2", 2)],
        _noisy_estimate(0.1),
        tmp_path,
        "d1",
        fingerprints={"t1": "a", "t2": "b"},
    )
    kept = (tmp_path / "results" / "t1.json").read_text()
    calls = []

    def counting(mixture, name):
        calls.append(name)
        return _noisy_estimate(0.1)(mixture)

    # t2's files changed (other audio, other fingerprint); t1's did not.
    changed = [FakeTrack("t1", 1), FakeTrack("t2", 7)]
    summary = ev.evaluate(changed, counting, tmp_path, "d1", fingerprints={"t1": "a", "t2": "c"})
    assert calls == ["t2"]
    assert (tmp_path / "results" / "t1.json").read_text() == kept
    fresh = _evaluator().evaluate(
        changed, _noisy_estimate(0.1), tmp_path / "fresh", "d1", fingerprints={"t1": "a", "t2": "c"}
    )
    assert summary["systems"] == fresh["systems"]
    assert json.loads((tmp_path / "results" / "t2.json").read_text())["data_fingerprint"] == "c"
    with pytest.raises(ValueError, match="1 of 2 tracks have no results .*: t2"):
        ev.merge(changed, tmp_path, "d1", fingerprints={"t1": "a", "t2": "other"})


@dataclass
class NanReferenceTrack(FakeTrack):
    def load(self):
        mixture, targets = super().load()
        targets[1, 0, 321] = math.nan
        return mixture, targets


def test_nan_reference_is_reported_as_nonfinite_not_silent(tmp_path):
    def lenient(reference, estimate):  # a metric that does not check its input: NaN goes through
        return (reference - estimate).square().mean(dim=(-2, -1))

    ev = Evaluator({"global_sdr": global_sdr, "lenient": lenient}, progress=False)
    ev.evaluate([NanReferenceTrack("t1", 1)], _noisy_estimate(0.1), tmp_path, digest="x")
    notes = json.loads((tmp_path / "results" / "t1.json").read_text())["notes"]
    assert any("global_sdr=nan: reference contains NaN at item 1, channel 0, sample 321" in n for n in notes)
    assert any("b/lenient=nan: reference contains NaN/Inf" in n for n in notes)
    assert not any("silent" in n for n in notes)
