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
            "restore_gan_mp3_32k/best_of_k restore_gan_mp3_32k/sample_0"
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


def test_separation_study_has_three_seeds_of_two_architectures_and_the_reference_rows():
    rows = _table_rows((EXPERIMENTS / "separation_chorales" / "results.md").read_text())
    names = {re.split(r"\s*\|\s*", row)[1]: re.split(r"\s*\|\s*", row)[2] for row in rows[1:]}
    assert names.keys() >= {"mixture", "oracle_irm", "chorales_unet", "chorales_umx"}
    assert names["chorales_unet"] == names["chorales_umx"] == "3 (seed 1, 2, 3)"
