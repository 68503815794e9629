import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from musicbench.errors import UserError
from musicbench.evaluation.museval_json import write_museval_dir
from musicbench.evaluation.results import load_results
from musicbench.leaderboard.errors import MissingResultsError, MissingSummaryError, NoRunsError
from musicbench.leaderboard.load import find_run_folders, load_museval, load_run
from musicbench.leaderboard.systems import group_entries
from musicbench.leaderboard.table import build_leaderboard
from musicbench.utils.files import write_json_atomic

from .conftest import TRACKS, track_values, write_run


def test_finds_run_folders_by_path_sweep_and_glob(sweep, tmp_path):
    runs = sorted(p.name for p in find_run_folders([sweep]))
    assert runs == ["lr0.001_seed1", "lr0.001_seed2", "lr0.001_seed3", "nested"]
    one = sweep / "lr0.001_seed2"
    assert find_run_folders([one]) == [one.resolve()]
    assert find_run_folders([one / "summary.json"]) == [one.resolve()]
    globbed = find_run_folders([str(sweep / "lr0.001_*")])
    assert [p.name for p in globbed] == ["lr0.001_seed1", "lr0.001_seed2", "lr0.001_seed3"]
    # The same folder named twice counts once.
    assert len(find_run_folders([one, str(sweep / "*seed2")])) == 1


def test_errors_name_the_path(sweep, tmp_path, caplog):
    with pytest.raises(NoRunsError, match="nowhere: no such file"):
        find_run_folders([tmp_path / "nowhere"])
    with pytest.raises(NoRunsError, match="no such file"):
        find_run_folders([str(tmp_path / "nothing*")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoRunsError, match=f"{empty}: no run folder"):
        find_run_folders([empty])
    unfinished = sweep / "lr0.001_seed1"
    (unfinished / "summary.json").unlink()
    with pytest.raises(MissingSummaryError, match=f"{unfinished} has no summary.json.*merge=true") as info:
        find_run_folders([unfinished])
    assert isinstance(info.value, UserError)
    # Matched by a glob, a run still in progress is left out with a warning; the finished ones are listed.
    with caplog.at_level("WARNING"):
        assert [p.name for p in find_run_folders([str(sweep / "lr0.001_*")])] == [
            "lr0.001_seed2",
            "lr0.001_seed3",
        ]
    assert f"skipped {unfinished} has no summary.json" in caplog.text


def test_load_run_reads_summary_results_and_config(sweep):
    folder = sweep / "lr0.001_seed2"
    run = load_run(folder)
    assert (run.name, run.kind, run.task, run.dataset, run.split) == (
        "unet",
        "eval",
        "separation",
        "chorales",
        "test",
    )
    assert run.input_baseline == "mixture" and run.seed == 2
    assert run.config["model.optimizer.lr"] == 0.001
    assert run.overrides == ["experiment=unet", "seed=2"]
    sel = run.scores[
        (run.scores.system == "model") & (run.scores.source == "bass") & (run.scores.metric == "sdr")
    ]
    assert dict(zip(sel.track, sel.value, strict=True)) == track_values(folder, "model", "bass", "sdr")
    assert set(run.scores.system) == {"model", "mixture"}


def test_eval_runs_take_the_model_config_of_their_training_run(tmp_path):
    evals = []
    for seed in (1, 2):
        train = write_run(tmp_path / "train" / f"seed{seed}", seed=seed, lr=0.01)
        for leftover in ("summary.json", "scores.csv"):  # trained with test=false
            (train / leftover).unlink()
        ckpt = train / "checkpoints" / "epoch003.ckpt"
        ckpt.parent.mkdir()
        ckpt.write_bytes(b"")
        folder = write_run(tmp_path / "eval" / f"e{seed}", seed=seed, with_config=False, checkpoint=str(ckpt))
        config = {"task_name": "eval", "seed": 42, "ckpt_path": str(train), "split": "test"}
        OmegaConf.save(
            OmegaConf.create({**config, "paths": {"output_dir": str(folder)}}), folder / "config.yaml"
        )
        evals.append(folder)
    runs = [load_run(p) for p in find_run_folders([tmp_path / "eval"])]
    assert [r.seed for r in runs] == [1, 2]
    assert runs[0].config["model.optimizer.lr"] == 0.01 and runs[0].config["eval.split"] == "test"
    assert "eval.ckpt_path" not in runs[0].config
    systems = [e for e in group_entries(runs) if e.role == "system"]
    assert len(systems) == 1 and systems[0].seeds == [1, 2]


def test_training_runs_that_tested_their_checkpoint_keep_their_own_config(tmp_path):
    """mb-train's test stage records its checkpoint too: the run is not an mb-eval run, wherever the
    checkpoint path points (here: a training folder of another seed, as a copied run's relative path can)."""
    runs = []
    for seed in (1, 2):
        folder = tmp_path / f"seed{seed}"
        other = tmp_path / f"seed{3 - seed}" / "checkpoints" / "best.ckpt"
        write_run(folder, seed=seed, checkpoint=str(other))
        config = OmegaConf.load(folder / "config.yaml")
        config.ckpt_path = None
        OmegaConf.save(config, folder / "config.yaml")
        runs.append(load_run(folder))
    assert runs[0].config["model.optimizer.lr"] == 0.001 and "eval.seed" not in runs[0].config
    systems = [e for e in group_entries(runs) if e.role == "system"]
    assert len(systems) == 1 and systems[0].seeds == [1, 2]


def test_load_run_refuses_missing_results(sweep):
    folder = sweep / "lr0.001_seed1"
    (folder / "results" / f"{TRACKS[3]}.json").unlink()
    with pytest.raises(
        MissingResultsError, match=f"{folder / 'results'}: no results for 1 track.*{TRACKS[3]}"
    ):
        load_run(folder)


def test_museval_round_trip_gives_the_same_numbers(tmp_path):
    ours = write_run(tmp_path / "run", seed=5)
    results = list(load_results(ours / "results").values())
    write_museval_dir(results, tmp_path / "exported", subset="test", system="model")
    imported = load_museval(tmp_path / "exported", name="exported")
    assert imported.kind == "museval" and imported.dataset == ""
    run = load_run(ours)
    bsseval = run.scores[
        (run.scores.system == "model") & run.scores.metric.isin(["sdr", "sir", "sar", "isr"])
    ]
    mine = {
        (t, s, m): v for t, s, m, v in bsseval[["track", "source", "metric", "value"]].itertuples(index=False)
    }
    theirs = {
        (t, s, m): v
        for t, s, m, v in imported.scores[["track", "source", "metric", "value"]].itertuples(index=False)
    }
    assert theirs.keys() == mine.keys()
    for key, value in mine.items():
        assert theirs[key] == pytest.approx(value, abs=1e-12)
    # In one table: the imported system has our model's numbers, and no test tells them apart.
    board = build_leaderboard([run, imported], metrics=["sdr"], n_resamples=200)
    rows = {e.label: i for i, e in enumerate(board.entries)}
    for j, column in enumerate(board.columns):
        mine_cell, theirs_cell = board.cells[(rows["unet"], j)], board.cells[(rows["exported"], j)]
        assert theirs_cell.value == pytest.approx(mine_cell.value, abs=1e-12)
        assert theirs_cell.value == pytest.approx(
            np.median(list(track_values(ours, "model", column.source, "sdr").values()))
        )
        assert (mine_cell.best and theirs_cell.tied) or (theirs_cell.best and mine_cell.tied)


def test_museval_folder_errors(tmp_path):
    with pytest.raises(NoRunsError, match="no museval JSON files"):
        load_museval(tmp_path)


def test_pipeline_runs_pair_items_by_scene_and_listener(tmp_path):
    folder = tmp_path / "cadenza"
    rng = np.random.default_rng(0)
    systems = {"oracle": 0.99, "mixture": 0.5, "model": 0.6}
    for system, level in systems.items():
        for scene in ("S1", "S2", "S3"):
            for listener in ("L1", "L2"):
                item = {
                    "item": f"{system}/{scene}/{listener}",
                    "system": system,
                    "scene": scene,
                    "listener": listener,
                    "metrics": {"haaqi": level + 0.01 * rng.normal(), "sdr": 10 * level},
                }
                write_json_atomic(folder / "results" / f"{system}_{scene}_{listener}.json", item)
    summary = {
        "recipe": "rebalance",
        "data": "/data/cadenza_chorales",
        "split": "test",
        "systems": {s: {} for s in systems},
    }
    write_json_atomic(folder / "summary.json", summary)
    run = load_run(folder)
    assert (run.kind, run.task, run.dataset, run.input_baseline) == (
        "pipeline",
        "cadenza",
        "cadenza_chorales",
        "mixture",
    )
    assert sorted(run.scores.track.unique()) == ["S1/L1", "S1/L2", "S2/L1", "S2/L2", "S3/L1", "S3/L2"]
    board = build_leaderboard([run], metrics=["haaqi", "sdr"], n_resamples=100)
    assert [e.role for e in board.entries] == ["baseline", "oracle", "system"]
    assert [c.statistic for c in board.columns] == [
        "mean",
        "mean",
    ]  # a pipeline's sdr is summarised by its mean
    haaqi = json.loads((folder / "results" / "model_S1_L1.json").read_text())["metrics"]["haaqi"]
    assert haaqi in run.scores[(run.scores.system == "model")].value.tolist()
