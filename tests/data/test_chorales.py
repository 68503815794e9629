"""The chorale generator: layout, manifest, exact mixtures, determinism, resumability, errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import soundfile as sf

from musicbench.data.chorales import SOURCES, _quantise, generate_chorales
from musicbench.data.manifest import load_manifest, sha256_file, verify_manifest

TINY = dict(num_tracks=6, max_seconds=4.0, num_test=2, num_valid=1)  # as in tests/conftest.py
SMALL = dict(num_tracks=3, max_seconds=2.0, num_test=1, num_valid=1, progress=False)
FILES = ["mixture.wav", *(f"{s}.wav" for s in SOURCES)]


def _read_pcm(path):
    data, sr = sf.read(str(path), dtype="int16", always_2d=True)
    return data.astype(np.int64), sr


def _mtimes(root):
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.glob("*/*/*.wav"))}


def test_layout_and_manifest(tiny_chorales_root):
    root = tiny_chorales_root
    m = load_manifest(root)
    assert m["name"] == "chorales" and m["format_version"] == 1
    assert m["generator"]["name"] == "musicbench.data.chorales"
    assert m["generator"]["params"]["num_tracks"] == 6 and m["generator"]["params"]["max_seconds"] == 4.0
    assert m["sample_rate"] == 44100 and m["channels"] == 2
    assert m["sources"] == ["soprano", "alto", "tenor", "bass"]
    train, test = set(m["splits"]["train"]), set(m["splits"]["test"])
    assert len(train) == 4 and len(test) == 2 and not train & test
    assert len(m["validation_tracks"]) == 1 and set(m["validation_tracks"]) <= train
    assert {t["name"] for t in m["tracks"]} == train | test
    # Only our folders exist: nothing stale, no temporaries of atomic writes.
    assert {d.name for d in (root / "train").iterdir()} == train
    assert {d.name for d in (root / "test").iterdir()} == test
    assert not list(root.rglob("*.tmp*"))
    assert verify_manifest(root) == []


def test_audio_files_match_manifest(tiny_chorales_root):
    m = load_manifest(tiny_chorales_root)
    for t in m["tracks"]:
        track_dir = tiny_chorales_root / t["split"] / t["name"]
        assert sorted(t["files"]) == sorted(FILES)
        assert t["source"].startswith("bach/") and 80.0 <= t["tempo_bpm"] <= 100.0
        for fname in FILES:
            info = sf.info(str(track_dir / fname))
            assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_16")
            assert info.frames == t["num_frames"] <= 4.0 * 44100
            assert sha256_file(track_dir / fname) == t["files"][fname]
        assert t["duration"] == pytest.approx(t["num_frames"] / 44100)


def test_mixture_is_exact_sum_of_stems_and_no_stem_is_silent(tiny_chorales_root):
    for track_dir in sorted(tiny_chorales_root.glob("*/*/")):
        mixture, _ = _read_pcm(track_dir / "mixture.wav")
        stems = {s: _read_pcm(track_dir / f"{s}.wav")[0] for s in SOURCES}
        np.testing.assert_array_equal(mixture, sum(stems.values()))
        # Normalised to about -1 dBFS (29204 of 32767).
        assert 28000 <= np.abs(mixture).max() <= 29300
        for s, x in stems.items():
            assert np.abs(x).max() > 1000, f"{track_dir.name}/{s} is (nearly) silent"


def test_pan_puts_soprano_left_and_bass_right(tiny_chorales_root):
    track_dir = sorted(tiny_chorales_root.glob("*/*/"))[0]
    rms = {
        s: np.sqrt((_read_pcm(track_dir / f"{s}.wav")[0].astype(float) ** 2).mean(axis=0)) for s in SOURCES
    }
    assert rms["soprano"][0] > 1.5 * rms["soprano"][1]
    assert rms["bass"][1] > 1.5 * rms["bass"][0]


def test_same_params_give_identical_bytes(tiny_chorales_root, tmp_path):
    m2 = generate_chorales(tmp_path, progress=False, **TINY)
    m1 = load_manifest(tiny_chorales_root)
    assert m2["tracks"] == m1["tracks"]
    assert (tmp_path / "manifest.json").read_bytes() == (tiny_chorales_root / "manifest.json").read_bytes()


def test_rerun_skips_finished_tracks(tmp_path):
    m1 = generate_chorales(tmp_path, **SMALL)
    before = _mtimes(tmp_path)
    m2 = generate_chorales(tmp_path, **SMALL)
    assert m2 == m1
    assert _mtimes(tmp_path) == before  # nothing rewritten


def test_changed_params_regenerate(tmp_path):
    m1 = generate_chorales(tmp_path, **SMALL)
    before = _mtimes(tmp_path)
    m2 = generate_chorales(tmp_path, **SMALL, gains_db={"soprano": -6.0})
    assert m2["generator"]["params_digest"] != m1["generator"]["params_digest"]
    assert m2["generator"]["params"]["gains_db"]["soprano"] == -6.0
    assert [t["name"] for t in m2["tracks"]] == [t["name"] for t in m1["tracks"]]
    after = _mtimes(tmp_path)
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in before)
    for t1, t2 in zip(m1["tracks"], m2["tracks"], strict=True):
        assert t1["files"]["soprano.wav"] != t2["files"]["soprano.wav"]
    assert verify_manifest(tmp_path) == []


def test_corrupted_track_is_regenerated_and_split_change_moves_tracks(tmp_path):
    m1 = generate_chorales(tmp_path, **SMALL)
    victim = next(t for t in m1["tracks"] if t["split"] == "train")
    wav = tmp_path / "train" / victim["name"] / "alto.wav"
    wav.write_bytes(wav.read_bytes()[:1000])  # a truncated file, as after a disk problem
    assert any("hash mismatch" in p and str(wav) in p for p in verify_manifest(tmp_path))
    assert generate_chorales(tmp_path, **SMALL) == m1
    assert sha256_file(wav) == victim["files"]["alto.wav"]

    # Two test tracks instead of one: the chosen chorales stay, one moves from train/ to test/.
    moved = generate_chorales(tmp_path, **{**SMALL, "num_test": 2})
    assert len(moved["splits"]["test"]) == 2 and len(moved["splits"]["train"]) == 1
    assert {t["name"] for t in moved["tracks"]} == {t["name"] for t in m1["tracks"]}
    assert {t["name"]: t["files"] for t in moved["tracks"]} == {t["name"]: t["files"] for t in m1["tracks"]}
    assert verify_manifest(tmp_path) == []
    for split in ("train", "test"):  # no stale copy left behind in the other split
        assert {d.name for d in (tmp_path / split).iterdir()} == set(moved["splits"][split])


def test_fewer_tracks_remove_stale_folders(tmp_path):
    generate_chorales(tmp_path, **SMALL)
    m = generate_chorales(tmp_path, **{**SMALL, "num_tracks": 2})
    on_disk = {d.name for d in tmp_path.glob("*/*") if d.is_dir()}
    assert on_disk == {t["name"] for t in m["tracks"]} and len(on_disk) == 2


def test_different_seed_chooses_other_chorales(tmp_path):
    a = generate_chorales(tmp_path / "a", **SMALL)
    b = generate_chorales(tmp_path / "b", **SMALL, seed=1)
    assert {t["name"] for t in a["tracks"]} != {t["name"] for t in b["tracks"]}


def test_quantise_keeps_stems_in_range_when_they_cancel():
    # Two stems that cancel almost completely: scaling to the mixture peak alone would clip them.
    t = np.linspace(0, 1, 1000)
    x = np.stack([np.sin(2 * np.pi * 5 * t)] * 2)
    pcm, mixture = _quantise({"a": x, "b": -0.99 * x}, peak_dbfs=-1.0)
    assert max(np.abs(p).max() for p in pcm.values()) <= 32767
    np.testing.assert_array_equal(mixture, pcm["a"] + pcm["b"])


def test_bad_split_sizes_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="num_valid"):
        generate_chorales(tmp_path, num_tracks=3, num_test=1, num_valid=3, progress=False)
    with pytest.raises(ValueError, match="num_test"):
        generate_chorales(tmp_path, num_tracks=3, num_test=4, progress=False)
    with pytest.raises(ValueError, match="unknown voice"):
        generate_chorales(tmp_path, **SMALL, pans={"vocals": 0.0})


def test_missing_soundfont_names_the_path(tmp_path):
    missing = tmp_path / "nope.sf2"
    with pytest.raises(FileNotFoundError, match="nope.sf2"):
        generate_chorales(tmp_path / "out", **SMALL, soundfont=missing)


def test_missing_tinysoundfont_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tinysoundfont", None)  # makes `import tinysoundfont` fail
    with pytest.raises(ImportError, match="pip install --no-deps tinysoundfont"):
        generate_chorales(tmp_path, **SMALL)


def test_load_manifest_errors_name_the_file(tmp_path):
    from musicbench.data.manifest import ManifestError

    with pytest.raises(ManifestError, match="manifest.json"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match=str(tmp_path / "manifest.json")):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(ManifestError, match="lacks"):
        load_manifest(tmp_path)


def test_interrupted_run_is_completed_by_the_next(tmp_path, monkeypatch):
    import musicbench.data.chorales as chorales

    reference = generate_chorales(tmp_path / "ref", **SMALL)
    real_write, calls = chorales.write_audio, []

    def crash_on_seventh(path, *args, **kwargs):  # dies in the middle of the second track
        calls.append(path)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(chorales, "write_audio", crash_on_seventh)
    with pytest.raises(KeyboardInterrupt):
        generate_chorales(tmp_path / "ds", **SMALL)
    assert not (tmp_path / "ds" / "manifest.json").exists()
    assert not list((tmp_path / "ds").rglob("*.tmp*"))
    monkeypatch.setattr(chorales, "write_audio", real_write)
    assert generate_chorales(tmp_path / "ds", **SMALL) == reference
    assert verify_manifest(tmp_path / "ds") == []
