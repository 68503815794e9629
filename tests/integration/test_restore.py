"""Integration: MP3 restoration through the real CLIs on the tiny chorale set (train -> test -> mb-eval)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent

PRESET = "experiment=restore_lstm_mp3_32k"
TINY_LSTM = [
    "model.n_fft=256",
    "model.hop_length=64",
    "model.net.hidden_size=16",
    "model.net.num_layers=1",
    "model.chunk_seconds=2.0",
    "model.context_seconds=0.5",
    "model.crossfade_seconds=0.25",
]
CACHE = "data.cache_dir={}/cache"  # mb-eval takes the data config (and so the cache) from the checkpoint


def _run(tmp_path, chorales_root, *args, capture=False):
    env = {**os.environ, "MB_OUTPUT_ROOT": str(tmp_path / "outputs")}
    common = [f"paths.chorales_root={chorales_root}"]
    return subprocess.run(
        [*map(str, args), *common], check=True, env=env, cwd=tmp_path, capture_output=capture, text=True
    )


def _single_run(folder: Path) -> Path:
    runs = list(folder.iterdir())
    assert len(runs) == 1
    return runs[0]


def test_cli_train_then_eval_restorer(tmp_path, tiny_chorales_root, tiny_mp3_run):
    _run(
        tmp_path,
        tiny_chorales_root,
        BIN / "mb-train",
        PRESET,
        *tiny_mp3_run,
        *TINY_LSTM,
        CACHE.format(tmp_path),
    )
    run = _single_run(tmp_path / "outputs" / "train" / "restore_lstm_mp3_32k")
    summary = json.loads((run / "summary.json").read_text())
    test_tracks = json.loads((tiny_chorales_root / "manifest.json").read_text())["splits"]["test"]
    assert sorted(summary["tracks"]) == sorted(test_tracks)
    assert set(summary["systems"]) == {"model", "input"}
    metrics = summary["systems"]["model"]["median"]["clean"]
    assert set(metrics) == {"snr", "si_sdr", "lsd", "lsd_high"}
    # The input baseline is the MP3 decode: worse above the codec's cut-off than over the whole band.
    base = summary["systems"]["input"]["median"]["clean"]
    assert base["lsd_high"] > base["lsd"] > 0 and base["snr"] > 0
    assert (run / "scores.csv").read_text().count("\n") == len(test_tracks) + 1
    logged = (run / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "val/loss", "val/sdr", "val/lsd"} <= set(logged)

    out = _run(
        tmp_path,
        tiny_chorales_root,
        BIN / "mb-eval",
        f"ckpt_path={run}",
        "+evaluator.progress=false",  # the rest of the evaluator (restoration metrics) is the checkpoint's
        capture=True,
    )
    assert "lsd_high" in out.stdout and "input baseline" in out.stdout
    ev = json.loads((_single_run(tmp_path / "outputs" / "eval" / "default") / "summary.json").read_text())
    # Same checkpoint, same cached pairs: the standalone evaluation reproduces the test stage of mb-train.
    assert ev["systems"]["model"]["median"]["clean"] == pytest.approx(metrics, abs=1e-6)


def test_identity_restorer_scores_exactly_the_mp3_input(tmp_path, tiny_chorales_root, tiny_mp3_run):
    _run(
        tmp_path,
        tiny_chorales_root,
        BIN / "mb-train",
        PRESET,
        *tiny_mp3_run,
        CACHE.format(tmp_path),
        "model=identity_restorer",
        "trainer.max_epochs=1",
    )
    run = _single_run(tmp_path / "outputs" / "train" / "restore_lstm_mp3_32k")
    summary = json.loads((run / "summary.json").read_text())
    for stat in ("median", "mean"):
        assert summary["systems"]["model"][stat] == summary["systems"]["input"][stat]
    for track in summary["tracks"]:
        result = json.loads((run / "results" / f"{track}.json").read_text())
        assert result["scores"]["model"] == result["scores"]["input"]
