"""The MP3 pair cache: aligned pairs, content + settings keys, cache hits, parallel preparation."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import torch

from musicbench.audio.mp3 import Mp3Codec
from musicbench.data import mp3_cache
from musicbench.data.index import FolderIndex, TrackIndex
from musicbench.data.mp3_cache import META_NAME, CleanItem, PairCache, PairTrack, entry_key
from musicbench.data.musdb_index import MusdbIndex
from musicbench.data.splits import SPLITS
from musicbench.data.tracks import DatasetError
from musicbench.metrics.sdr import snr
from musicbench.utils.files import sha256_file

SATB = ["soprano", "alto", "tenor", "bass"]
SR = 44100


def prepare(
    index: TrackIndex, cache: Path, codec: Mp3Codec | None = None, workers: int = 0, splits=SPLITS
) -> dict[str, list[PairTrack]]:
    """The pairs of ``splits`` of ``index`` (the mixtures) in ``cache``, as the datamodule prepares them."""
    codec = codec or Mp3Codec(bitrate=32)
    pairs = PairCache(cache / codec.name, codec, SR, workers=workers, progress=False)
    return pairs.pairs({s: [CleanItem(t) for t in index.tracks(s)] for s in splits})


def entries(cache: Path) -> set[Path]:
    return {p.parent for p in cache.rglob(META_NAME)}


def test_pairs_are_clean_and_its_aligned_mp3(tiny_chorales_root, tmp_path):
    index = MusdbIndex(tiny_chorales_root, SATB, SR)
    track = prepare(index, tmp_path / "cache", splits=["test"])["test"][0]
    degraded, clean = track.load()
    mixture, _ = index.tracks("test")[0].load()
    assert torch.allclose(clean[0], mixture, atol=1e-6)
    assert torch.equal(degraded, Mp3Codec(bitrate=32)(mixture, SR))
    corr = scipy.signal.correlate(degraded[0].numpy(), clean[0, 0].numpy(), mode="full", method="fft")
    lags = scipy.signal.correlation_lags(degraded.shape[-1], clean.shape[-1])
    assert lags[np.argmax(corr)] == 0


def test_cache_hits_do_not_encode_and_settings_make_new_entries(tiny_chorales_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    index = MusdbIndex(tiny_chorales_root, SATB, SR)
    prepare(index, cache)
    first = entries(cache)
    assert len(first) == 6  # every track of every split

    def no_encoding(*args, **kwargs):
        raise AssertionError("a cache hit must not encode again")

    with monkeypatch.context() as m:
        m.setattr(Mp3Codec, "encode", no_encoding)
        pairs = prepare(MusdbIndex(tiny_chorales_root, SATB, SR), cache)
        assert len(pairs["train"]) + len(pairs["valid"]) + len(pairs["test"]) == 6
    assert entries(cache) == first
    # Any codec setting makes new entries and leaves the old ones alone.
    for codec in (Mp3Codec(bitrate=64), Mp3Codec(bitrate=32, quality=7), Mp3Codec(None, vbr_quality=6)):
        before = entries(cache)
        prepare(index, cache, codec=codec, splits=["test"])
        assert len(entries(cache) - before) == 2 and before <= entries(cache)


def test_content_change_makes_a_new_entry(tmp_path, layout):
    root = tmp_path / "music"
    for i in range(3):
        layout.write_tone(root / f"a{i}.wav", freq=300 + 50 * i)
    codec = Mp3Codec(bitrate=64)
    prepare(FolderIndex(root, valid_fraction=0.0, test_fraction=0.0), tmp_path / "c", codec, splits=["train"])
    before = entries(tmp_path / "c")
    layout.write_tone(root / "a1.wav", freq=1000.0)  # same name, other content
    index = FolderIndex(root, valid_fraction=0.0, test_fraction=0.0)
    tracks = prepare(index, tmp_path / "c", codec, splits=["train"])["train"]
    after = entries(tmp_path / "c")
    assert len(after - before) == 1
    changed = next(t for t in tracks if t.name == "a1.wav")
    assert changed.path in after - before


def test_keys_hash_the_file_and_the_stem_of_a_multi_stem_track(tiny_chorales_root, tmp_path, layout):
    """The key of a pair: the file's sha256 (plus ``/<stem>`` for a track of several stems) with every codec
    setting and the rate, so caches written before stay valid."""
    codec = Mp3Codec(bitrate=32)
    track = MusdbIndex(tiny_chorales_root, SATB, SR).tracks("test")[0]
    alto = CleanItem(track, "alto")
    assert alto.path == track.path / "alto.wav"
    assert alto.content_hash() == sha256_file(track.path / "alto.wav") + "/alto"
    file = layout.write_tone(tmp_path / "m" / "x.wav")
    (single,) = FolderIndex(tmp_path / "m", 0.0, 0.0).tracks("train")
    assert CleanItem(single).content_hash() == sha256_file(file)
    cache = PairCache(tmp_path / "c", codec, SR)
    assert cache.entry(alto).name == entry_key(alto.content_hash(), codec, SR)
    (pair,) = prepare(MusdbIndex(tiny_chorales_root, SATB, SR), tmp_path / "c", codec, splits=["valid"])[
        "valid"
    ]
    mixture = MusdbIndex(tiny_chorales_root, SATB, SR).tracks("valid")[0].path / "mixture.wav"
    assert pair.path.name == entry_key(sha256_file(mixture) + "/mixture", codec, SR)
    assert entry_key("abc", codec, SR) != entry_key("abc", codec, 48000)


def test_parallel_preparation_writes_the_same_pairs(tiny_chorales_root, tmp_path):
    index = MusdbIndex(tiny_chorales_root, SATB, SR)
    serial = prepare(index, tmp_path / "serial", splits=["train"])["train"]
    parallel = prepare(index, tmp_path / "parallel", workers=2)["train"]
    for a, b in zip(serial, parallel, strict=True):
        assert a.path.name == b.path.name  # same key
        # (not the bytes: libsndfile stamps float wav files with the time of writing)
        assert torch.equal(a.load()[0], b.load()[0]) and torch.equal(a.load()[1], b.load()[1])


def _damage_entries(cache: Path, tiny_chorales_root: Path):
    index = MusdbIndex(tiny_chorales_root, SATB, SR)
    (pair,) = prepare(index, cache, splits=["valid"])["valid"]
    return index, pair, [t.detach().clone() for t in pair.load()]


def _snr(pair: PairTrack) -> float:
    degraded, clean = pair.load()
    return float(snr(clean[0], degraded))


def test_truncated_cache_file_is_rebuilt_with_a_warning(tiny_chorales_root, tmp_path, caplog):
    index, pair, pristine = _damage_entries(tmp_path / "cache", tiny_chorales_root)
    normal = _snr(pair)
    clean = pair.path / "clean.wav"
    clean.write_bytes(
        clean.read_bytes()[: clean.stat().st_size // 3]
    )  # a truncated copy, as after a full disk
    with caplog.at_level(logging.WARNING, logger="musicbench.data.mp3_cache"):
        (again,) = prepare(index, tmp_path / "cache", splits=["valid"])["valid"]
    assert f"MP3 pair cache entry {pair.path}" in caplog.text and "clean.wav has" in caplog.text
    assert again.path == pair.path
    loaded = again.load()
    assert torch.equal(loaded[0], pristine[0]) and torch.equal(loaded[1], pristine[1])
    assert _snr(again) == normal


def test_altered_cache_file_is_caught_by_its_checksum(tiny_chorales_root, tmp_path, caplog):
    index, pair, pristine = _damage_entries(tmp_path / "cache", tiny_chorales_root)
    degraded = pair.path / "degraded.wav"
    data = bytearray(degraded.read_bytes())
    data[-400:-200] = bytes(200)  # same size and header, other samples
    degraded.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="musicbench.data.mp3_cache"):
        (again,) = prepare(index, tmp_path / "cache", splits=["valid"])["valid"]
    assert "degraded.wav does not match its recorded sha256" in caplog.text
    assert torch.equal(again.load()[0], pristine[0])


def test_entries_without_checksums_are_rebuilt(tiny_chorales_root, tmp_path, caplog):
    index, pair, pristine = _damage_entries(tmp_path / "cache", tiny_chorales_root)
    meta = json.loads((pair.path / META_NAME).read_text())
    del meta["files"]
    (pair.path / META_NAME).write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="musicbench.data.mp3_cache"):
        (again,) = prepare(index, tmp_path / "cache", splits=["valid"])["valid"]
    assert "written without file checksums" in caplog.text
    assert "files" in json.loads((again.path / META_NAME).read_text())


def test_checksums_are_verified_once_per_process(tiny_chorales_root, tmp_path, monkeypatch):
    index, pair, _ = _damage_entries(tmp_path / "cache", tiny_chorales_root)
    mp3_cache._VERIFIED.clear()
    hashed = []
    real = mp3_cache.sha256_file
    monkeypatch.setattr(mp3_cache, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    for _ in range(3):
        prepare(index, tmp_path / "cache", splits=["valid"])
    assert sorted(n for n in hashed if n in mp3_cache.PAIR_FILES) == ["clean.wav", "degraded.wav"]


def test_a_pair_truncated_after_opening_is_refused_when_read(tiny_chorales_root, tmp_path):
    _, pair, _ = _damage_entries(tmp_path / "cache", tiny_chorales_root)
    clean = pair.path / "clean.wav"
    clean.write_bytes(clean.read_bytes()[: clean.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"clean.wav ends at sample \d+, its cache entry says"):
        pair.load()
