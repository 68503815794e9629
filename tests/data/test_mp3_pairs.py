"""Mp3PairsDataModule: sources, caching (keying, hits), batches, on-the-fly encoding, bad input."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch

from musicbench.audio.mp3 import CodecError, Mp3Codec
from musicbench.data.mp3_pairs import (
    META_NAME,
    FolderSource,
    Mp3PairsDataModule,
    PairChunkDataset,
    TrackSource,
    entry_key,
)
from musicbench.data.tracks import DatasetError
from musicbench.utils.files import sha256_file

SATB = ["soprano", "alto", "tenor", "bass"]
SR = 44100


def chorale_dm(root: Path, cache: Path, **kwargs) -> Mp3PairsDataModule:
    codec = kwargs.pop("codec", Mp3Codec(bitrate=32))
    defaults = dict(
        sample_rate=SR,
        cache_dir=cache,
        prepare_workers=0,
        chunk_seconds=1.0,
        samples_per_epoch=4,
        batch_size=2,
        valid_segment_seconds=1.0,
        progress=False,
    )
    return Mp3PairsDataModule(TrackSource(root, SATB, SR), codec, **{**defaults, **kwargs})


def entries(cache: Path) -> set[Path]:
    return {p.parent for p in cache.rglob(META_NAME)}


def write_tone(path: Path, seconds: float = 1.0, freq: float = 440.0, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * freq * t)
    sf.write(path, np.stack([tone, 0.5 * tone]).T, sr)
    return path


def test_batches_have_the_separation_shapes(tiny_chorales_root, tmp_path):
    dm = chorale_dm(tiny_chorales_root, tmp_path / "cache")
    dm.setup()
    degraded, clean = next(iter(dm.train_dataloader()))
    assert degraded.shape == (2, 2, SR) and clean.shape == (2, 1, 2, SR)
    degraded, clean = next(iter(dm.val_dataloader()))
    assert degraded.shape == (1, 2, SR) and clean.shape == (1, 1, 2, SR)
    test = dm.tracks("test")
    degraded, clean = next(iter(dm.test_dataloader()))
    assert degraded.shape == (1, 2, test[0].num_frames) and clean.shape[:2] == (1, 1)
    assert dm.sources == ["clean"] and test[0].sources == ("clean",)
    # Same split as the separation datamodule (the manifest's validation and test tracks).
    sep_valid = [t.name for t in TrackSource(tiny_chorales_root, SATB, SR).index.tracks("valid")]
    assert [t.name for t in dm.tracks("valid")] == sep_valid


def test_pairs_are_clean_and_its_aligned_mp3(tiny_chorales_root, tmp_path):
    dm = chorale_dm(tiny_chorales_root, tmp_path / "cache")
    track = dm.tracks("test")[0]
    degraded, clean = track.load()
    mixture, _ = TrackSource(tiny_chorales_root, SATB, SR).items("test")[0].track.load()
    assert torch.allclose(clean[0], mixture, atol=1e-6)
    assert torch.equal(degraded, Mp3Codec(bitrate=32)(mixture, SR))
    corr = scipy.signal.correlate(degraded[0].numpy(), clean[0, 0].numpy(), mode="full", method="fft")
    lags = scipy.signal.correlation_lags(degraded.shape[-1], clean.shape[-1])
    assert lags[np.argmax(corr)] == 0


def test_cache_hits_do_not_encode_and_settings_make_new_entries(tiny_chorales_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    chorale_dm(tiny_chorales_root, cache).prepare_data()
    first = entries(cache)
    assert len(first) == 6  # every track of every split

    def no_encoding(*args, **kwargs):
        raise AssertionError("a cache hit must not encode again")

    with monkeypatch.context() as m:
        m.setattr(Mp3Codec, "encode", no_encoding)
        dm = chorale_dm(tiny_chorales_root, cache)
        dm.prepare_data()
        assert len(dm.tracks("train")) + len(dm.tracks("valid")) + len(dm.tracks("test")) == 6
    assert entries(cache) == first
    # Any codec setting makes new entries and leaves the old ones alone.
    for codec in (Mp3Codec(bitrate=64), Mp3Codec(bitrate=32, quality=7), Mp3Codec(None, vbr_quality=6)):
        before = entries(cache)
        chorale_dm(tiny_chorales_root, cache, codec=codec).tracks("test")
        assert len(entries(cache) - before) == 2 and before <= entries(cache)


def test_content_change_makes_a_new_entry(tmp_path):
    root = tmp_path / "music"
    for i in range(3):
        write_tone(root / f"a{i}.wav", freq=300 + 50 * i)
    source = FolderSource(root, valid_fraction=0.0, test_fraction=0.0)
    dm = Mp3PairsDataModule(
        source,
        Mp3Codec(bitrate=64),
        cache_dir=tmp_path / "c",
        prepare_workers=0,
        chunk_seconds=0.5,
        progress=False,
    )
    dm.tracks("train")
    before = entries(tmp_path / "c")
    write_tone(root / "a1.wav", freq=1000.0)  # same name, other content
    dm2 = Mp3PairsDataModule(
        FolderSource(root, valid_fraction=0.0, test_fraction=0.0),
        Mp3Codec(bitrate=64),
        cache_dir=tmp_path / "c",
        prepare_workers=0,
        chunk_seconds=0.5,
        progress=False,
    )
    tracks = dm2.tracks("train")
    after = entries(tmp_path / "c")
    assert len(after - before) == 1
    changed = next(t for t in tracks if t.name == "a1.wav")
    assert changed.path in after - before


def test_keys_hash_the_file_and_the_stem_of_a_multi_stem_track(tiny_chorales_root, tmp_path):
    """The key of a pair: the file's sha256 (plus ``/<stem>`` for a track of several stems) with every codec
    setting and the rate, so caches written before stay valid."""
    codec = Mp3Codec(bitrate=32)
    (alto,) = TrackSource(tiny_chorales_root, SATB, SR, stem="alto").items("valid")
    assert alto.content_hash() == sha256_file(alto.track.path / "alto.wav") + "/alto"
    file = write_tone(tmp_path / "m" / "x.wav")
    (single,) = FolderSource(tmp_path / "m", 0.0, 0.0).items("train")
    assert single.content_hash() == sha256_file(file)
    dm = chorale_dm(tiny_chorales_root, tmp_path / "c", codec=codec)
    (pair,) = dm.tracks("valid")
    mixture = TrackSource(tiny_chorales_root, SATB, SR).items("valid")[0]
    assert pair.path.name == entry_key(sha256_file(mixture.path) + "/mixture", codec, SR)
    assert entry_key("abc", codec, SR) != entry_key("abc", codec, 48000)


def test_parallel_preparation_writes_the_same_pairs(tiny_chorales_root, tmp_path):
    serial = chorale_dm(tiny_chorales_root, tmp_path / "serial")
    parallel = chorale_dm(tiny_chorales_root, tmp_path / "parallel", prepare_workers=2)
    parallel.prepare_data()
    for a, b in zip(serial.tracks("train"), parallel.tracks("train"), strict=True):
        assert a.path.name == b.path.name  # same key
        # (not the bytes: libsndfile stamps float wav files with the time of writing)
        assert torch.equal(a.load()[0], b.load()[0]) and torch.equal(a.load()[1], b.load()[1])


def test_on_the_fly_chunks_are_aligned_deterministic_and_vary_in_bitrate(tiny_chorales_root, tmp_path):
    dm = chorale_dm(tiny_chorales_root, tmp_path / "cache", bitrates=[16, 128], samples_per_epoch=8)
    dm.setup("fit")
    ds = dm.train_set
    assert isinstance(ds, PairChunkDataset)
    items = [ds[i] for i in range(8)]
    assert torch.equal(ds[3][0], items[3][0])  # a pure function of (seed, index)
    high_energy = []
    for degraded, clean in items:
        assert degraded.shape == (2, SR) and clean.shape == (1, 2, SR)
        corr = scipy.signal.correlate(degraded[0].numpy(), clean[0, 0].numpy(), mode="full", method="fft")
        assert scipy.signal.correlation_lags(SR, SR)[np.argmax(corr)] == 0
        d, c = (np.abs(np.fft.rfft(x.numpy())) ** 2 for x in (degraded[0], clean[0, 0]))
        high = slice(len(d) * 5 // 22, None)  # above ~5 kHz
        high_energy.append(d[high].sum() / c[high].sum())  # the share of the clean high band kept
    # 16 kbit/s keeps nothing above 4 kHz, 128 kbit/s keeps most of it: both bit rates were drawn.
    assert min(high_energy) < 0.05 and max(high_energy) > 0.5


def test_short_tracks_are_padded_or_skipped_with_a_log_line(tiny_chorales_root, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    dm = chorale_dm(tiny_chorales_root, tmp_path / "cache", chunk_seconds=60.0)
    dm.setup("fit")
    degraded, clean = dm.train_set[0]
    assert degraded.shape[-1] == 60 * SR and degraded[..., -SR:].abs().max() == 0  # zero-padded
    assert "zero-padded" in caplog.text and "short_tracks=pad" in caplog.text
    skip = chorale_dm(tiny_chorales_root, tmp_path / "cache", chunk_seconds=60.0, short_tracks="skip")
    with pytest.raises(DatasetError, match="no training pairs"):
        skip.setup("fit")
    assert "skipped" in caplog.text


def test_unreadable_file_is_named(tmp_path):
    root = tmp_path / "music"
    write_tone(root / "good.wav")
    (root / "sub").mkdir()
    (root / "sub" / "broken.flac").write_bytes(b"not audio at all")
    dm = Mp3PairsDataModule(FolderSource(root), Mp3Codec(), cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(DatasetError, match=r"broken\.flac"):
        dm.prepare_data()


def test_folder_source_split_is_deterministic_and_stable(tmp_path):
    root = tmp_path / "music"
    for i in range(20):
        write_tone(root / f"d{i % 3}" / f"t{i}.wav", seconds=0.1)
    src = FolderSource(root, valid_fraction=0.2, test_fraction=0.3)
    before = {s: [it.name for it in src.items(s)] for s in ("train", "valid", "test")}
    assert sum(len(v) for v in before.values()) == 20 and all(before.values())
    write_tone(root / "new.ogg", seconds=0.1)
    after = {s: [it.name for it in FolderSource(root, 0.2, 0.3).items(s)] for s in before}
    for s in before:
        assert set(before[s]) <= set(after[s])


def test_folder_source_resamples_other_rates(tmp_path):
    write_tone(tmp_path / "m" / "x.flac", seconds=0.5, sr=22050)
    dm = Mp3PairsDataModule(
        FolderSource(tmp_path / "m", 0.0, 0.0),
        Mp3Codec(bitrate=64),
        sample_rate=SR,
        cache_dir=tmp_path / "c",
        prepare_workers=0,
        chunk_seconds=0.25,
        progress=False,
    )
    (track,) = dm.tracks("train")
    assert track.sample_rate == SR and track.num_frames == SR // 2


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(sample_rate=44000), CodecError, r"44000 Hz .*supported: \[8000"),
        (dict(codec=Mp3Codec(bitrate=33)), CodecError, r"33 kbit/s.*valid: \["),
        (dict(bitrates=[16, 35]), CodecError, r"35 kbit/s"),
        (dict(sources=["vocals"]), ValueError, r"data.sources must be \['clean'\]"),
        (dict(short_tracks="trim"), ValueError, "short_tracks"),
    ],
)
def test_bad_settings_are_rejected_at_construction(tiny_chorales_root, tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        chorale_dm(tiny_chorales_root, tmp_path, **kwargs)


def test_track_source_rejects_unknown_stem(tiny_chorales_root):
    with pytest.raises(ValueError, match="source.stem='drums'"):
        TrackSource(tiny_chorales_root, SATB, SR, stem="drums")
    (item,) = TrackSource(tiny_chorales_root, SATB, SR, stem="alto").items("valid")
    assert item.path.name == "alto.wav"


def test_parallel_preparation_after_torch_started_its_thread_pool(tiny_chorales_root, tmp_path):
    # Forked workers once deadlocked when the parent had started torch's OpenMP pool (as a training run has
    # by the time Lightning calls prepare_data). A fresh interpreter with several threads reproduces it.
    code = (
        "import sys, torch\n"
        "from musicbench.audio.mp3 import Mp3Codec\n"
        "from musicbench.data.mp3_pairs import Mp3PairsDataModule, TrackSource\n"
        "torch.set_num_threads(2)\n"
        "x = torch.randn(8, 2_000_000); (x * 2).sum(); torch.stft(x, 1024, return_complex=True)\n"
        "src = TrackSource(sys.argv[1], ['soprano', 'alto', 'tenor', 'bass'])\n"
        "dm = Mp3PairsDataModule(src, Mp3Codec(), cache_dir=sys.argv[2], prepare_workers=2, progress=True)\n"
        "dm.prepare_data()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    subprocess.run(
        [sys.executable, "-c", code, str(tiny_chorales_root), str(tmp_path / "c")],
        check=True,
        env=env,
        timeout=120,
        capture_output=True,
    )
    assert len(entries(tmp_path / "c")) == 6
