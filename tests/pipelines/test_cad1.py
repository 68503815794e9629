"""CAD1 Task 1: the recipe against pyclarity's own enhance and evaluate code, on a generated CAD1 layout."""

from __future__ import annotations

import csv
import json
import zipfile

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from musicbench.data.cadenza import EVAL_ORDER, Cad1Task1
from musicbench.pipelines.cadenza.cad1 import Cad1Task1Pipeline, song_seed
from musicbench.pipelines.cadenza.demixers import MixtureDemixer, OracleDemixer
from musicbench.pipelines.cadenza.report import CAD1_COLUMNS

SONG = "Song A - One"


def _pipeline(root, split="valid", songs=(SONG,), **kwargs):
    data = Cad1Task1(root, split, songs=list(songs) if songs else None)
    demixers = {"oracle": OracleDemixer(), "mixture": MixtureDemixer()}
    return Cad1Task1Pipeline(data, demixers, progress=False, **kwargs)


def _scores(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def parity_run(cad1_root, tmp_path_factory):
    """Our enhance + evaluate (pyclarity's noise) of one song for both listeners, oracle and mixture."""
    out = tmp_path_factory.mktemp("cad1_parity")
    pipeline = _pipeline(cad1_root, noise="pyclarity")
    pipeline.enhance(out)
    pipeline.evaluate(out)
    pipeline.merge(out)
    return out, pipeline


def test_scores_csv_matches_pyclarity_evaluate(parity_run, cad1_root, tmp_path):
    pytest.importorskip("pyflac")
    from clarity.utils.audiogram import Listener as ClarityListener
    from clarity.utils.results_support import ResultsFile
    from recipes.cad1.task1.baseline.evaluate import _evaluate_song_listener

    out, pipeline = parity_run
    config = OmegaConf.create(
        {
            "evaluate": {"set_random_seed": True},
            "path": {"music_dir": str(cad1_root / "audio" / "musdb18hq")},
            "sample_rate": 44100,
            "stem_sample_rate": 24000,
        }
    )
    listeners = ClarityListener.load_listener_dict(cad1_root / "metadata" / "listeners.valid.json")
    for system in ("oracle", "mixture"):
        theirs = tmp_path / f"{system}.csv"
        results = ResultsFile(file_name=theirs, header_columns=list(CAD1_COLUMNS))
        for lid in ("L0001", "L0002"):
            score, per_stem = _evaluate_song_listener(
                SONG, listeners[lid], config, "train", out / system / "enhanced_signals"
            )
            results.add_result({"song": SONG, "listener": lid, "score": score, **per_stem})
        ours, ref = _scores(out / system / "scores.csv"), _scores(theirs)
        assert [list(r) for r in ours] == [list(r) for r in ref]  # same columns, same order
        for a, b in zip(ours, ref, strict=True):
            assert (a["song"], a["listener"]) == (b["song"], b["listener"])
            for column in CAD1_COLUMNS[2:]:  # measured: ~1e-11
                assert float(a[column]) == pytest.approx(float(b[column]), abs=1e-6), (system, column)
    # The two systems differ: the oracle is far above doing nothing.
    oracle, mixture = (
        np.mean([float(r["score"]) for r in _scores(out / s / "scores.csv")]) for s in ("oracle", "mixture")
    )
    assert oracle > mixture + 0.3


def test_default_noise_is_within_0_005_of_pyclarity_noise(parity_run, tmp_path):
    out, _ = parity_run
    counter = _pipeline(parity_run[1].data.root)
    counter.enhance(tmp_path)
    counter.evaluate(tmp_path)
    counter.merge(tmp_path)
    for system in ("oracle", "mixture"):
        ours, ref = _scores(tmp_path / system / "scores.csv"), _scores(out / system / "scores.csv")
        diffs = [
            abs(float(a[c]) - float(b[c])) for a, b in zip(ours, ref, strict=True) for c in CAD1_COLUMNS[2:]
        ]
        assert max(diffs) < 0.005 and max(diffs) > 0  # other noise draws, nearly the same score


def test_enhanced_files_match_pyclarity_enhance(parity_run, cad1_root, tmp_path):
    pytest.importorskip("pyflac")
    from clarity.enhancer.compressor import Compressor
    from clarity.enhancer.nalr import NALR
    from clarity.utils.audiogram import Listener as ClarityListener
    from recipes.cad1.task1.baseline.enhance import process_stems_for_listener, remix_signal, save_flac_signal

    out, pipeline = parity_run
    listener = ClarityListener.load_listener_dict(cad1_root / "metadata" / "listeners.valid.json")["L0002"]
    song = pipeline.data.songs[0]
    stems = {}
    for stem in pipeline.data.stems:
        audio = pipeline.data.stem(song, stem)  # (samples, 2) float32, as pyclarity's wavfile / 32768
        stems[f"left_{stem}"], stems[f"right_{stem}"] = audio[:, 0], audio[:, 1]
    processed = process_stems_for_listener(stems, NALR(220, 44100), Compressor(), listener, False)
    folder = out / "oracle" / "enhanced_signals" / "L0002" / SONG
    for name, signal in processed.items():
        theirs = tmp_path / f"{name}.flac"
        save_flac_signal(signal, theirs, 44100, 24000, do_scale_signal=True)
        ours = folder / f"L0002_{SONG}_{name}.flac"
        assert np.array_equal(sf.read(ours, dtype="int16")[0], sf.read(theirs, dtype="int16")[0]), name
        peak_ours, peak_theirs = (float(p.with_suffix(".txt").read_text()) for p in (ours, theirs))
        assert peak_ours == pytest.approx(peak_theirs, rel=1e-12)
    save_flac_signal(remix_signal(processed), tmp_path / "remix.flac", 44100, 32000, True, True)
    remix_ours = sf.read(folder / f"L0002_{SONG}_remix.flac", dtype="int16")
    remix_theirs = sf.read(tmp_path / "remix.flac", dtype="int16")
    assert remix_ours[1] == remix_theirs[1] == 32000
    assert np.array_equal(remix_ours[0], remix_theirs[0])


def test_song_seed_is_pyclarity_s():
    import hashlib

    assert song_seed(SONG) == int(hashlib.md5(SONG.encode()).hexdigest(), 16) % 10**8


def test_shards_then_merge_equal_one_run_and_resume_redoes_only_what_changed(cad1_root, tmp_path):
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    pipeline = _pipeline(cad1_root, backend="numba")
    pipeline.enhance(whole)
    pipeline.evaluate(whole)
    reference = pipeline.merge(whole)
    for k in range(3):
        pipeline.enhance(sharded, (k, 3))
    with pytest.raises(Exception, match="no results"):
        pipeline.merge(sharded)
    for k in range(3):
        pipeline.evaluate(sharded, (k, 3))
    merged = pipeline.merge(sharded)
    assert merged["systems"] == reference["systems"]
    assert (sharded / "oracle" / "scores.csv").read_text() == (whole / "oracle" / "scores.csv").read_text()

    # A killed run: one result lost, one enhanced stem changed. A rerun redoes those two items only.
    results = sorted((sharded / "results").glob("*.json"))
    results[0].unlink()
    changed = json.loads(results[1].read_text())
    stem = sharded / "mixture" / "enhanced_signals" / changed["listener"] / changed["song"]
    (victim,) = stem.glob(f"*_left_{EVAL_ORDER[0]}.txt")
    victim.write_text("0.5")
    before = {p.name: p.stat().st_mtime_ns for p in (sharded / "results").glob("*.json")}
    pipeline.evaluate(sharded)
    after = {p.name: p.stat().st_mtime_ns for p in (sharded / "results").glob("*.json")}
    redone = {n for n in after if before.get(n) != after[n]}
    assert redone == {results[0].name, results[1].name}
    assert json.loads(results[1].read_text())["score"] != changed["score"]


def test_test_split_cuts_segments_and_packages_the_submission(cad1_factory, tmp_path):
    root = cad1_factory(tmp_path / "cad1", {"Test Song": "test"}, seconds=2.0, split="test")
    data = Cad1Task1(root, "test")
    pipeline = Cad1Task1Pipeline(data, {"model": OracleDemixer()}, progress=False)
    assert pipeline.use_segments
    out = tmp_path / "out"
    pipeline.enhance(out)
    folder = out / "model" / "enhanced_signals" / "L0001" / "Test Song"
    stem, rate = sf.read(folder / "L0001_Test Song_left_vocals.flac")
    assert rate == 24000 and len(stem) == pytest.approx((1.75 - 0.5) * 24000, abs=2)
    remix, rate = sf.read(folder / "L0001_Test Song_remix.flac")
    assert rate == 32000 and remix.shape == (pytest.approx((1.5 - 0.25) * 32000, abs=2), 2)
    zip_path = pipeline.package(out, "model", "T042")
    assert zip_path.name == "submission_T042.zip"
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
    assert len(names) == 2 * (8 + 8 + 1)  # two listeners: 8 stems, their 8 scales, the remix
    assert "evaluation/L0002/Test Song/L0002_Test Song_remix.flac" in names
    assert all(n.startswith("evaluation/L000") for n in names)
