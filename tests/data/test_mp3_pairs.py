"""Mp3PairsDataModule: clean audio from a track index, batches, on-the-fly encoding, bad input."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import torch

from musicbench.audio.mp3 import CodecError, Mp3Codec
from musicbench.data.index import FolderIndex
from musicbench.data.mp3_cache import META_NAME
from musicbench.data.mp3_pairs import Mp3PairsDataModule, PairChunkDataset
from musicbench.data.musdb_index import MusdbIndex
from musicbench.data.tracks import DatasetError

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
    rate = kwargs.get("target_rate") or SR  # the files' rate: the clean side's
    return Mp3PairsDataModule(MusdbIndex(root, SATB, rate), codec, **{**defaults, **kwargs})


def entries(cache: Path) -> set[Path]:
    return {p.parent for p in cache.rglob(META_NAME)}


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
    sep_valid = [t.name for t in MusdbIndex(tiny_chorales_root, SATB, SR).tracks("valid")]
    assert [t.name for t in dm.tracks("valid")] == sep_valid


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


def test_unreadable_file_is_named(tmp_path, layout):
    root = tmp_path / "music"
    layout.write_tone(root / "good.wav")
    (root / "sub").mkdir()
    (root / "sub" / "broken.flac").write_bytes(b"not audio at all")
    dm = Mp3PairsDataModule(FolderIndex(root), Mp3Codec(), cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(DatasetError, match=r"broken\.flac"):
        dm.prepare_data()


def test_folder_files_are_resampled_to_the_pairs_rate(tmp_path, layout):
    layout.write_tone(tmp_path / "m" / "x.flac", seconds=0.5, sr=22050)
    dm = Mp3PairsDataModule(
        FolderIndex(tmp_path / "m", 0.0, 0.0),
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


def test_stem_must_be_the_mixture_or_a_source_of_the_index(tiny_chorales_root, tmp_path):
    with pytest.raises(ValueError, match="data.stem='drums'"):
        chorale_dm(tiny_chorales_root, tmp_path, stem="drums")
    with pytest.raises(ValueError, match="data.stem='alto'"):
        Mp3PairsDataModule(FolderIndex(tmp_path), Mp3Codec(), stem="alto")
    dm = chorale_dm(tiny_chorales_root, tmp_path / "cache", stem="alto")
    (pair,) = dm.tracks("valid")
    assert pair.load()[1].shape[:2] == (1, 2)
    assert json.loads((pair.path / META_NAME).read_text())["source_path"].endswith("alto.wav")


def test_parallel_preparation_after_torch_started_its_thread_pool(tiny_chorales_root, tmp_path):
    # Forked workers once deadlocked when the parent had started torch's OpenMP pool (as a training run has
    # by the time Lightning calls prepare_data). A fresh interpreter with several threads reproduces it.
    code = (
        "import sys, torch\n"
        "from musicbench.audio.mp3 import Mp3Codec\n"
        "from musicbench.data.mp3_pairs import Mp3PairsDataModule\n"
        "from musicbench.data.musdb_index import MusdbIndex\n"
        "torch.set_num_threads(2)\n"
        "x = torch.randn(8, 2_000_000); (x * 2).sum(); torch.stft(x, 1024, return_complex=True)\n"
        "src = MusdbIndex(sys.argv[1], ['soprano', 'alto', 'tenor', 'bass'])\n"
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


def test_a_changed_test_file_is_evaluated_again_an_unchanged_one_reused(tmp_path, layout):
    """MP3 pairs keyed by content: after a test file changes, its per-track result is recomputed on the
    new audio; the other file's result is reused."""
    from musicbench.evaluation.model import evaluate_model
    from musicbench.evaluation.runner import Evaluator
    from musicbench.metrics.sdr import snr
    from musicbench.models.restoration import IdentityRestorer

    music = tmp_path / "music"
    layout.write_tone(music / "a.wav", seconds=0.5, freq=440.0)
    layout.write_tone(music / "b.wav", seconds=0.5, freq=660.0)
    model = IdentityRestorer(sample_rate=SR, chunk_seconds=1.0, context_seconds=0.0, crossfade_seconds=0.1)

    def run(out):
        dm = Mp3PairsDataModule(
            FolderIndex(music, 0.0, 1.0),
            Mp3Codec(bitrate=32),
            sample_rate=SR,
            cache_dir=tmp_path / "c",
            prepare_workers=0,
            chunk_seconds=0.25,
            progress=False,
        )
        ev = Evaluator({"snr": snr}, input_baseline="input", progress=False)
        summary = evaluate_model(model, dm, ev, out, model_id="identity", device="cpu")
        return summary, {p.name: p.read_text() for p in (out / "results").glob("*.json")}

    before, results = run(tmp_path / "eval")
    layout.write_tone(music / "b.wav", seconds=0.5, freq=990.0)  # same length, other content
    after, rerun = run(tmp_path / "eval")
    assert rerun["a.wav.json"] == results["a.wav.json"]
    assert rerun["b.wav.json"] != results["b.wav.json"]
    fresh, fresh_results = run(tmp_path / "fresh")  # what the changed data gives from scratch
    assert after["systems"] == fresh["systems"] and after["data_digest"] == fresh["data_digest"]
    assert after["data_digest"] != before["data_digest"]
    assert json.loads(rerun["b.wav.json"])["scores"] == json.loads(fresh_results["b.wav.json"])["scores"]
