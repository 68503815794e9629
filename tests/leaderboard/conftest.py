"""Tiny run folders written with the project's own writers (results JSON, summary.json, config.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from musicbench.evaluation.results import track_value, write_scores_csv, write_summary
from musicbench.utils.files import write_json_atomic

TRACKS = [f"track{i:02d}" for i in range(12)]
SOURCES = ["vocals", "bass"]
BSSEVAL = ["sdr", "sir", "sar", "isr"]


def _frames(rng: np.random.Generator, centre: float, n: int = 5) -> list[float]:
    return (centre + rng.normal(0.0, 1.0, n)).round(6).tolist()


def write_run(
    folder: Path,
    *,
    name: str = "unet",
    seed: int = 1,
    lr: float = 0.001,
    offset: float = 5.0,
    noise: float = 0.5,
    tracks: list[str] = TRACKS,
    dataset: str = "chorales",
    split: str = "test",
    baseline: str = "mixture",
    extra_systems: dict[str, float] | None = None,
    with_config: bool = True,
    **summary_meta,
) -> Path:
    """A run folder like mb-train's: per track, the model at ``offset`` dB above the baseline (plus seeded
    noise), framewise BSSEval values (their medians are the track values) and snr."""
    rng = np.random.default_rng(seed)
    content = np.random.default_rng(0)  # the tracks' difficulty: the same in every run
    results = []
    for track in tracks:
        difficulty = {s: float(content.normal(0.0, 2.0)) for s in SOURCES}
        systems = {baseline: -5.0, "model": offset, **(extra_systems or {})}
        scores: dict = {}
        frames: dict = {}
        for system, level in systems.items():
            # The baseline scores the input: the same in every run.
            draw = content if system == baseline else rng
            jitter = 0.0 if system == baseline else noise
            frames[system] = {
                s: {m: _frames(draw, difficulty[s] + level + jitter * draw.normal()) for m in BSSEVAL}
                for s in SOURCES
            }
            scores[system] = {
                s: {
                    **{m: track_value(v) for m, v in frames[system][s].items()},
                    "snr": round(
                        difficulty[s] + level + jitter * float(draw.normal()) + 0.1 * draw.normal(), 6
                    ),
                }
                for s in SOURCES
            }
        result = {"track": track, "sources": SOURCES, "scores": scores, "frames": frames, "notes": []}
        write_json_atomic(folder / "results" / f"{track}.json", result)
        results.append(result)
    target = "musicbench.models.separation.MaskSeparator"
    write_summary(
        folder / "summary.json",
        results,
        input_baseline=baseline,
        split=split,
        model=target,
        data=f"/data/{dataset}",
        name=name,
        **summary_meta,
    )
    write_scores_csv(results, folder / "scores.csv")
    if with_config:
        config = {
            "task_name": "train",
            "name": name,
            "seed": seed,
            "data": {"root": f"/data/{dataset}", "seed": seed},
            "model": {"_target_": target, "net": {"depth": 4}, "optimizer": {"lr": lr}},
            "trainer": {"default_root_dir": str(folder), "max_epochs": 3},
            "paths": {"output_dir": str(folder)},
        }
        OmegaConf.save(OmegaConf.create(config), folder / "config.yaml")
        (folder / ".hydra").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(
            OmegaConf.create([f"experiment={name}", f"seed={seed}"]), folder / ".hydra/overrides.yaml"
        )
    return folder


def track_values(folder: Path, system: str, source: str, metric: str) -> dict[str, float]:
    """``{track: value}`` read back from a run folder's results files (what the leaderboard must use)."""
    out = {}
    for path in sorted((folder / "results").glob("*.json")):
        data = json.loads(path.read_text())
        out[data["track"]] = data["scores"][system][source][metric]
    return out


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A sweep folder: three seeds of one config, one run with another learning rate (clearly better)."""
    root = tmp_path / "sweep"
    for seed in (1, 2, 3):
        write_run(root / f"lr0.001_seed{seed}", seed=seed, lr=0.001, offset=5.0)
    write_run(root / "lr0.01_seed1" / "nested", seed=1, lr=0.01, offset=8.0)
    return root
