import numpy as np
import pytest
from scipy import stats as sps

from musicbench.leaderboard import stats
from musicbench.leaderboard.errors import LeaderboardError, MissingMetricError, NoRunsError
from musicbench.leaderboard.load import find_run_folders, load_run
from musicbench.leaderboard.systems import config_differences, group_entries, identity_config
from musicbench.leaderboard.table import build_leaderboard

from .conftest import TRACKS, track_values, write_run


def _runs(root):
    return [load_run(p) for p in find_run_folders([root])]


def _row(board, label):
    return next(i for i, e in enumerate(board.entries) if e.label == label)


def _col(board, source, metric):
    return next(j for j, c in enumerate(board.columns) if (c.source, c.metric) == (source, metric))


def test_seed_runs_are_one_system_averaged_per_track(sweep):
    runs = _runs(sweep)
    assert identity_config(runs[0]) == identity_config(runs[1])  # only seeds and run folders differ
    entries = group_entries(runs)
    assert [(e.label, e.role, len(e.runs)) for e in entries] == [
        ("mixture", "baseline", 4),
        ("unet [lr0.001_seed1]", "system", 3),
        ("unet [nested]", "system", 1),
    ]
    assert entries[1].seeds == [1, 2, 3]
    assert config_differences(entries) == ["model.optimizer.lr"]
    seeds = [track_values(sweep / f"lr0.001_seed{s}", "model", "vocals", "sdr") for s in (1, 2, 3)]
    sel = entries[1].scores
    sel = sel[(sel.source == "vocals") & (sel.metric == "sdr")]
    assert sel.track.tolist() == TRACKS
    assert sel.value.to_numpy() == pytest.approx([np.mean([v[t] for v in seeds]) for t in TRACKS])
    separate = group_entries(runs, seeds="separate")
    # One row per seed run; two runs of one name and seed get their folder's name.
    assert [e.label for e in separate] == [
        "mixture",
        "unet (seed 1) [lr0.001_seed1]",
        "unet (seed 2)",
        "unet (seed 3)",
        "unet (seed 1) [nested]",
    ]


def test_cells_are_the_statistics_of_the_track_values(sweep):
    board = build_leaderboard(_runs(sweep), metrics=["all"], n_resamples=500, seed=3)
    assert [c.statistic for c in board.columns if c.metric in ("sdr", "snr")] == ["median", "mean"] * 2
    best = _row(board, "unet [nested]")
    assert board.entries[0].label == "mixture" and board.entries[best].role == "system"
    values = track_values(sweep / "lr0.01_seed1" / "nested", "model", "bass", "snr")
    base = track_values(sweep / "lr0.001_seed1", "mixture", "bass", "snr")
    j = _col(board, "bass", "snr")
    cell = board.cells[(best, j)]
    arr = np.array([values[t] for t in TRACKS])
    assert cell.value == pytest.approx(np.mean(arr))
    assert (cell.q25, cell.q75) == pytest.approx(tuple(np.percentile(arr, [25, 75])))
    assert (cell.ci_low, cell.ci_high) == pytest.approx(stats.bootstrap_ci(arr, "mean", 500, 0.95, 3))
    assert cell.delta == pytest.approx(np.mean(arr) - np.mean([base[t] for t in TRACKS]))
    assert cell.best and not cell.tied and cell.n == len(TRACKS)
    # The 5 dB model is clearly worse than the 8 dB one: the test against the best, Holm over 2 comparisons.
    worse = board.cells[(_row(board, "unet [lr0.001_seed1]"), j)]
    seeds = [track_values(sweep / f"lr0.001_seed{s}", "model", "bass", "snr") for s in (1, 2, 3)]
    mean_seeds = np.array([np.mean([v[t] for v in seeds]) for t in TRACKS])
    assert worse.p == pytest.approx(sps.wilcoxon(arr, mean_seeds).pvalue)
    mixture_p = sps.wilcoxon(arr, np.array([base[t] for t in TRACKS])).pvalue
    assert worse.p_adjusted == pytest.approx(min(1.0, max(2 * min(worse.p, mixture_p), worse.p)))
    assert not worse.tied and worse.p_adjusted < 0.05


def test_identical_systems_are_not_significantly_different(tmp_path):
    write_run(tmp_path / "a", name="a", seed=1, offset=5.0)
    write_run(tmp_path / "b", name="b", seed=1, offset=5.0, lr=0.5)  # other config, same numbers
    write_run(tmp_path / "c", name="c", seed=1, offset=1.0, lr=0.7)
    board = build_leaderboard(_runs(tmp_path), metrics=["sdr"], n_resamples=200, correction="none")
    for j in range(len(board.columns)):
        a, b, c = (board.cells[(_row(board, n), j)] for n in "abc")
        assert a.value == b.value
        assert (a.best and b.tied and b.p == 1.0) or (b.best and a.tied and a.p == 1.0)
        assert not c.tied and c.p < 0.05


def test_lower_is_better_picks_the_lowest(tmp_path):
    write_run(tmp_path / "a", name="a", offset=5.0)
    write_run(tmp_path / "b", name="b", offset=8.0, lr=0.1)
    board = build_leaderboard(_runs(tmp_path), metrics=["snr"], lower_is_better=["snr"], n_resamples=100)
    for j, column in enumerate(board.columns):
        assert column.lower_is_better
        assert board.cells[(_row(board, "a"), j)].best
    assert [e.label for e in board.entries] == ["mixture", "a", "b"]  # sorted best first


def test_filters_and_their_errors(tmp_path):
    write_run(tmp_path / "chorales", name="a")
    write_run(tmp_path / "musdb", name="b", dataset="musdb18hq")
    runs = _runs(tmp_path)
    with pytest.raises(LeaderboardError, match="dataset=chorales.*dataset=musdb18hq.*--dataset"):
        build_leaderboard(runs)
    board = build_leaderboard(runs, dataset="musdb18hq", metrics=["sdr"], sources=["bass"], n_resamples=100)
    assert [e.label for e in board.entries] == ["mixture", "b"]
    assert [c.name for c in board.columns] == ["bass/sdr"]
    with pytest.raises(
        NoRunsError, match="split=valid.*the runs have: task=separation dataset=chorales split=test"
    ):
        build_leaderboard(runs, split="valid")
    with pytest.raises(
        MissingMetricError, match=f"no metric haaqi in the results of .*{tmp_path}.*they have: sdr"
    ):
        build_leaderboard(runs, dataset="chorales", metrics=["haaqi"])
    with pytest.raises(MissingMetricError, match="no source drums"):
        build_leaderboard(runs, dataset="chorales", sources=["drums"])


def test_aggregate_flag_chooses_the_statistic(sweep):
    runs = _runs(sweep)
    values = track_values(sweep / "lr0.01_seed1" / "nested", "model", "vocals", "sdr")
    arr = np.array(list(values.values()))
    for aggregate, expected in (("mean", np.mean(arr)), ("median", np.median(arr))):
        board = build_leaderboard(
            runs, metrics=["sdr"], sources=["vocals"], aggregate=aggregate, n_resamples=50
        )
        assert board.columns[0].statistic == aggregate
        assert board.cells[(_row(board, "unet [nested]"), 0)].value == pytest.approx(expected)


def test_without_a_metric_the_table_shows_the_headline_metric(sweep):
    board = build_leaderboard(_runs(sweep), n_resamples=100)
    assert {c.metric for c in board.columns} == {"sdr"}
    assert len(board.columns) == 2


def test_config_differences_leave_out_what_another_network_class_implies():
    from musicbench.leaderboard.systems import Entry

    unet = {"name": "a", "model.net._target_": "UNet", "model.net.depth": 6, "model.net.dropout": 0.5}
    umx = {"name": "b", "model.net._target_": "OpenUnmix", "model.net.hidden_size": 256}
    umx |= {"model.net.dropout": 0.4, "model.optimizer.lr": 1e-3}
    rows = [Entry(n, "system", "model", [], c) for n, c in (("a", unet), ("b", umx))]
    assert config_differences(rows) == ["model.net._target_", "model.net.dropout", "model.optimizer.lr"]
    # A third row of the first class with another depth: the depth is a difference again.
    rows.append(Entry("c", "system", "model", [], {**unet, "name": "c", "model.net.depth": 4}))
    assert config_differences(rows) == [
        "model.net._target_",
        "model.net.depth",
        "model.net.dropout",
        "model.optimizer.lr",
    ]
    rows.pop()
    # Same class: a key one row lacks is a difference.
    rows[1].config = {**unet, "name": "b", "model.net.kernel_size": 3}
    assert config_differences(rows) == ["model.net.kernel_size"]


def test_system_patterns_keep_the_matching_rows_and_the_baseline(sweep):
    runs = _runs(sweep)
    board = build_leaderboard(runs, metrics=["sdr"], n_resamples=50, systems=["*nested*"])
    assert [e.label for e in board.entries] == ["mixture", "unet [nested]"]
    with pytest.raises(
        LeaderboardError, match=r"no system row matches; the rows are: unet \[lr0.001_seed1\]"
    ):
        build_leaderboard(runs, metrics=["sdr"], n_resamples=50, systems=["gan*"])
