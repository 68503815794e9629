"""Quality vs diversity of stochastic models: the points plotted are the track means of the run scores."""

from pathlib import Path

import numpy as np
import pytest

from musicbench.leaderboard.errors import LeaderboardError
from musicbench.leaderboard.load import Run, scores_frame
from musicbench.leaderboard.plots import diversity_points, plot_diversity

TRACKS = ("a", "b", "c")


def _run(name: str, systems: dict[str, list[float]], path: Path) -> Run:
    """A restoration run: per system, its lsd on each track (diversity: pairwise_lsd)."""
    rows = [
        (system, track, "mix", "pairwise_lsd" if system == "diversity" else "lsd", value)
        for system, values in systems.items()
        for track, value in zip(TRACKS, values, strict=True)
    ]
    return Run(
        path=path,
        name=name,
        kind="eval",
        task="restoration",
        dataset="chorales",
        split="test",
        input_baseline="input",
        scores=scores_frame(rows),
    )


def test_diversity_points_and_plot(tmp_path):
    rng = np.random.default_rng(0)
    stochastic = {f"sample_{k}": list(rng.uniform(1, 3, 3)) for k in range(3)}
    stochastic |= {"mean": [1.0, 1.5, 2.0], "best_of_k": [0.9, 1.0, 1.1], "diversity": [0.2, 0.4, 0.9]}
    stochastic["input"] = [4.0, 5.0, 6.0]
    runs = [
        _run("gan", stochastic, tmp_path / "gan"),
        _run("det", {"model": [2.0, 2.0, 2.6], "input": [4.0, 5.0, 6.0]}, tmp_path / "det"),
        _run("other", {"model": [1.0, 1.0, 1.0]}, tmp_path / "other"),
        _run("one", {"sample_0": [3.0, 3.0, 3.3], "mean": [3.0, 3.0, 3.3]}, tmp_path / "one"),
    ]
    runs[2].scores["metric"] = "snr"  # a run without the metric is left out
    points = diversity_points(runs, "lsd")
    gan = points[points["run"] == "gan"].set_index("kind", append=False)
    assert sorted(points["run"].unique()) == ["det", "gan", "one"]
    one = points[points["run"] == "one"]  # a single sample: diversity 0
    assert one["kind"].tolist() == ["sample", "mean"] and one["diversity"].tolist() == [0.0, 0.0]
    assert one["value"].tolist() == pytest.approx([3.1, 3.1])
    assert points.loc[points["run"] == "gan", "diversity"].tolist() == pytest.approx([0.5] * 5)
    samples = points[(points["run"] == "gan") & (points["kind"] == "sample")]["value"].to_numpy()
    assert samples == pytest.approx([np.mean(stochastic[f"sample_{k}"]) for k in range(3)])
    assert gan.loc["mean", "value"] == pytest.approx(1.5) and gan.loc["best_of_k", "value"] == pytest.approx(
        1.0
    )
    det = points[points["run"] == "det"]
    assert det["kind"].tolist() == ["model"] and det["diversity"].tolist() == [0.0]
    assert det["value"].tolist() == pytest.approx([2.2])

    png = tmp_path / "div.png"
    plot_diversity(runs, png, "lsd", baseline="input")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob(".*"))
    with pytest.raises(LeaderboardError, match="no run has samples"):
        plot_diversity(runs[1:], tmp_path / "none.png", "lsd")
    with pytest.raises(LeaderboardError, match=r"\.png, \.svg, \.pdf"):
        plot_diversity(runs, tmp_path / "div.gif", "lsd")
