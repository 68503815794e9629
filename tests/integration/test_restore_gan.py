"""Integration: the stochastic and deterministic GAN restorer presets through the real CLI (train -> test)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent

TINY_GAN = [
    "evaluator.excerpts=1",
    "evaluator.excerpt_seconds=1.0",
    "model.n_fft=256",
    "model.hop_length=64",
    "model.generator.depth=2",
    "model.generator.base_channels=8",
    "model.critic.depth=2",
    "model.critic.base_channels=8",
    "model.num_samples=3",
    "model.chunk_seconds=2.0",
    "model.context_seconds=0.5",
    "model.crossfade_seconds=0.25",
]


def _train(tmp_path, chorales_root, overrides, *args) -> Path:
    env = {**os.environ, "MB_OUTPUT_ROOT": str(tmp_path / "outputs")}
    cmd = [
        str(BIN / "mb-train"),
        *overrides,
        *TINY_GAN,
        *args,
        f"paths.chorales_root={chorales_root}",
        f"data.cache_dir={tmp_path}/cache",
    ]
    subprocess.run(cmd, check=True, env=env, cwd=tmp_path)
    (name,) = [a.split("=", 1)[1] for a in args if a.startswith("experiment=")]
    (run,) = list((tmp_path / "outputs" / "train" / name).iterdir())
    return run


def test_stochastic_gan_trains_and_reports_samples_best_of_k_and_diversity(
    tmp_path, tiny_chorales_root, tiny_mp3_run
):
    run = _train(tmp_path, tiny_chorales_root, tiny_mp3_run, "experiment=restore_gan_mp3_32k")
    summary = json.loads((run / "summary.json").read_text())
    systems = summary["systems"]
    assert set(systems) == {"sample_0", "sample_1", "sample_2", "mean", "best_of_k", "diversity", "input"}
    med = {k: v["median"]["clean"] for k, v in systems.items()}
    assert set(med["sample_0"]) == {"snr", "si_sdr", "lsd", "lsd_high"}
    for metric in ("snr", "si_sdr"):  # the best of K is at least as good as any sample (per track)
        assert med["best_of_k"][metric] >= min(med[f"sample_{k}"][metric] for k in range(3)) - 1e-9
    assert med["diversity"]["pairwise_lsd"] > 0  # different z, different restorations
    logged = (run / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/g_loss", "train/d_loss", "train/gp", "train/critic_real", "train/critic_fake"} <= set(
        logged
    )
    (excerpt,) = list((run / "excerpts").iterdir())
    names = {p.name for p in excerpt.iterdir()}
    assert {"clean.wav", "input.wav", "restored_0.wav", "restored_2.wav", "spectrograms.png"} <= names
    assert (excerpt / "spectrograms.png").stat().st_size > 10_000


def test_deterministic_gan_has_one_restoration(tmp_path, tiny_chorales_root, tiny_mp3_run):
    run = _train(
        tmp_path,
        tiny_chorales_root,
        tiny_mp3_run,
        "experiment=restore_gan_mp3_32k_deterministic",
        "model.num_samples=1",
    )
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["systems"]) == {"sample_0", "mean", "input"}
    assert summary["systems"]["sample_0"]["median"] == summary["systems"]["mean"]["median"]
