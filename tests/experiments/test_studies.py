"""The committed studies in experiments/: their tables come back from the committed run copies with
nothing retrained, equal to the committed results.md and to the table in the study's README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from musicbench.leaderboard.cli import main

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
# The table arguments of each study (the Makefile's study-* targets).
STUDIES = {
    "separation_chorales": [],
    "restoration_mp3_32k": [
        "--metric",
        "lsd",
        "lsd_high",
        "snr",
        "--system",
        *(
            "restore_lstm_mp3_32k restore_gan_mp3_32k_deterministic/mean restore_gan_mp3_32k/mean "
            "restore_gan_mp3_32k/best_of_k restore_gan_mp3_32k/sample_0 restore_gan_mp3_32k_fullband/best_of_k "
            "restore_gan_mp3_32k_fullband/sample_0"
        ).split(),
    ],
    "restoration_hires_88k": [
        "--metric",
        "lsd_ext",
        "lsd_missing",
        "lsd",
        "snr",
        "--system",
        *(
            "restore_hires_lstm_88k restore_hires_gan_88k/mean restore_hires_gan_88k/best_of_k "
            "restore_hires_gan_88k/sample_0"
        ).split(),
    ],
}


def _table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| ")]


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_the_committed_table_comes_back_from_the_committed_runs(study, tmp_path):
    folder = EXPERIMENTS / study
    out = tmp_path / "results.md"
    assert main([str(folder / "runs"), *STUDIES[study], "--out", str(out)]) == 0
    committed = (folder / "results.md").read_text()
    assert out.read_text() == committed
    readme = (folder / "README.md").read_text()
    rows = _table_rows(committed)
    assert rows and all(row in readme for row in rows), f"{folder / 'README.md'} shows another table"


def _diversity(study: str, run: str) -> dict[str, float]:
    """The mean over tracks of the diversity metrics of a study's stochastic run (its committed summary)."""
    import json

    (path,) = (EXPERIMENTS / study / "runs" / run).rglob("summary.json")
    return json.loads(path.read_text())["systems"]["diversity"]["mean"]["clean"]


@pytest.mark.parametrize(
    "study,run",
    [("restoration_mp3_32k", "restore_gan_mp3_32k"), ("restoration_hires_88k", "restore_hires_gan_88k")],
)
def test_the_stochastic_gan_samples_differ(study, run):
    """The committed study's stochastic GAN gives restorations that differ between noise draws (its
    samples once coincided: pairwise LSD 0.18 dB)."""
    assert _diversity(study, run)["pairwise_lsd"] > 0.5


def test_separation_study_has_three_seeds_of_two_architectures_and_the_reference_rows():
    rows = _table_rows((EXPERIMENTS / "separation_chorales" / "results.md").read_text())
    names = {re.split(r"\s*\|\s*", row)[1]: re.split(r"\s*\|\s*", row)[2] for row in rows[1:]}
    assert names.keys() >= {"mixture", "oracle_irm", "chorales_unet", "chorales_umx"}
    assert names["chorales_unet"] == names["chorales_umx"] == "3 (seed 1, 2, 3)"
