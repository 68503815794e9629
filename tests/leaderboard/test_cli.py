import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from musicbench.evaluation.museval_json import write_museval_dir
from musicbench.evaluation.results import load_results
from musicbench.leaderboard.cli import main

from .conftest import TRACKS, track_values


def _seed_mean(sweep, source, metric):
    runs = [track_values(sweep / f"lr0.001_seed{s}", "model", source, metric) for s in (1, 2, 3)]
    return {t: np.mean([r[t] for r in runs]) for t in TRACKS}


def test_mb_leaderboard_prints_the_table(sweep):
    script = Path(sys.executable).parent / "mb-leaderboard"
    proc = subprocess.run(
        [str(script), str(sweep), "--metric", "sdr", "--resamples", "300"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    best = track_values(sweep / "lr0.01_seed1" / "nested", "model", "vocals", "sdr")
    base = track_values(sweep / "lr0.001_seed1", "mixture", "vocals", "sdr")
    seeds = _seed_mean(sweep, "vocals", "sdr")
    best_median = np.median(list(best.values()))
    base_median = np.median(list(base.values()))
    seeds_median = np.median(list(seeds.values()))
    assert f"{best_median:.2f}* ({best_median - base_median:+.2f})" in out
    assert f"{seeds_median:.2f} ({seeds_median - base_median:+.2f})" in out  # significantly worse: no mark
    assert f"{base_median:.2f}" in out
    lines = out.splitlines()
    assert re.search(
        r"unet \[lr0\.001_seed1\].*3 \(seed 1, 2, 3\).*model\.optimizer\.lr=0\.001", "".join(lines)
    )
    assert "separation on chorales/test: 12 tracks" in out
    assert "vocals/sdr (median)" in out and "bass/sdr (median)" in out


def test_formats_write_files_atomically(sweep, tmp_path, capsys):
    md, csv_path, html = tmp_path / "board.md", tmp_path / "board.csv", tmp_path / "board.html"
    for out in (md, csv_path, html):
        assert (
            main(
                [
                    str(sweep),
                    "--metric",
                    "sdr",
                    "snr",
                    "--source",
                    "bass",
                    "--resamples",
                    "200",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
    assert not list(tmp_path.glob(".*tmp*"))  # no temporaries left behind
    best = track_values(sweep / "lr0.01_seed1" / "nested", "model", "bass", "snr")
    mean_snr = np.mean(list(best.values()))
    assert "| unet [nested] | 1 (seed 1) | " in md.read_text()
    assert f"{mean_snr:.2f}*" in md.read_text()
    rows = {r["system"]: r for r in csv.DictReader(io.StringIO(csv_path.read_text()))}
    assert set(rows) == {"mixture", "unet [lr0.001_seed1]", "unet [nested]"}
    assert float(rows["unet [nested]"]["bass/snr/value"]) == pytest.approx(mean_snr, abs=1e-12)
    assert rows["unet [nested]"]["bass/snr/best"] == "True"
    assert rows["unet [lr0.001_seed1]"]["config:model.optimizer.lr"] == "0.001"
    assert rows["unet [lr0.001_seed1]"]["seeds"] == "1 2 3"
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<script" not in page and "http" not in page and "<link" not in page  # self-contained
    assert f"{mean_snr:.2f}*" in page
    assert main([str(sweep), "--metric", "sdr", "--resamples", "50", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("system,role,runs,seeds,")


def test_plots(sweep, tmp_path):
    png, svg = tmp_path / "boxes.png", tmp_path / "boxes.svg"
    assert (
        main([str(sweep), "--metric", "sdr", "--resamples", "50", "--plot", str(png), "--plot", str(svg)])
        == 0
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "<svg" in svg.read_text()[:2000]
    assert main([str(sweep), "--resamples", "50", "--plot", str(tmp_path / "x.gif")]) == 1


def test_museval_import_in_the_same_table(sweep, tmp_path, capsys):
    folder = sweep / "lr0.01_seed1" / "nested"
    write_museval_dir(load_results(folder / "results").values(), tmp_path / "UMX", subset="test")
    assert (
        main(
            [
                str(sweep),
                "--museval",
                f"SISEC_UMX={tmp_path / 'UMX'}",
                "--metric",
                "sdr",
                "--resamples",
                "50",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    rows = {r["system"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert float(rows["SISEC_UMX"]["vocals/sdr/value"]) == pytest.approx(
        float(rows["unet [nested]"]["vocals/sdr/value"])
    )
    assert rows["SISEC_UMX"]["vocals/sdr/tied"] == "True" or rows["SISEC_UMX"]["vocals/sdr/best"] == "True"
    assert rows["SISEC_UMX"]["role"] == "system"
    # Named an oracle (by prefix), it is not a candidate for the best system.
    argv = [str(sweep), "--museval", f"IRM1={tmp_path / 'UMX'}", "--oracle", "IRM", "--metric", "sdr"]
    assert main([*argv, "--resamples", "50", "--format", "csv"]) == 0
    rows = {r["system"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert rows["IRM1"]["role"] == "oracle" and rows["IRM1"]["vocals/sdr/best"] == "False"
    assert rows["unet [nested]"]["vocals/sdr/best"] == "True"


def test_errors_are_one_line_naming_the_path(sweep, tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "missing: no such file or folder" in err and "Traceback" not in err
    (sweep / "lr0.001_seed3" / "summary.json").unlink()
    assert main([str(sweep / "lr0.001_seed3")]) == 1
    assert "lr0.001_seed3 has no summary.json" in capsys.readouterr().err
    assert main([str(sweep), "--metric", "lsd"]) == 1
    assert "no metric lsd in the results of" in capsys.readouterr().err
    assert main([]) == 1
    assert main([str(sweep), "--out", str(tmp_path / "table.txt")]) == 1
    assert "--format" in capsys.readouterr().err


def test_export_runs_copies_what_the_table_needs_without_frames_or_machine_paths(
    sweep, tmp_path, monkeypatch, capsys
):
    """The copies give the same table as the run folders; they have the track values but not the
    framewise ones, and no absolute path (the study folder names nothing outside itself)."""
    monkeypatch.chdir(tmp_path)
    export = tmp_path / "study" / "runs"
    args = [str(sweep), "--metric", "sdr", "snr", "--resamples", "200", "--format", "csv"]
    assert main([*args, "--export-runs", str(export)]) == 0
    original = capsys.readouterr().out
    copies = sorted(p.parent for p in export.rglob("summary.json"))
    assert [p.relative_to(export).as_posix() for p in copies] == [
        "unet/lr0.001_seed1",
        "unet/lr0.001_seed2",
        "unet/lr0.001_seed3",
        "unet/nested",
    ]
    assert not list(export.rglob(".*.tmp*")) and not list(export.rglob("scores.csv"))
    umask = os.umask(0)
    os.umask(umask)
    assert all(p.stat().st_mode & 0o777 == 0o777 & ~umask for p in copies)  # not mkdtemp's private mode
    for path in export.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert str(tmp_path) not in text and '"frames"' not in text, path
    seed1 = copies[0]
    assert (seed1 / ".hydra" / "overrides.yaml").read_text().split() == [
        "-",
        "experiment=unet",
        "-",
        "seed=1",
    ]
    assert "output_dir: sweep/lr0.001_seed1" in (seed1 / "config.yaml").read_text()
    assert track_values(seed1, "model", "bass", "sdr") == track_values(
        sweep / "lr0.001_seed1", "model", "bass", "sdr"
    )
    # Exporting again replaces the copies; the table of the copies is the table of the runs.
    assert main([*args, "--export-runs", str(export)]) == 0
    capsys.readouterr()
    assert main([str(export), *args[1:]]) == 0
    assert capsys.readouterr().out == original
