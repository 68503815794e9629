"""The one-shot GPU benchmark (``make bench-gpu``) in its smallest size on the CPU: it runs every section
from a bare checkout (no chorale set: it renders its own) and prints their tables."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Section heading -> first cells of the rows its table must have.
SECTIONS = {
    "HAAQI: batch of 8 chorale stems vs MP3 32 kbit/s": ["batch 8 x 0.5 s", "batch 8 x 0.5 s: cpu, torch back end"],
    "BSSEval v4: museval vs musicbench": ["museval.evaluate", "musicbench bsseval"],
    "SDR family and restoration metrics": [
        "global_sdr", "snr", "si_sdr", "log_spectral_distance", "improvement(si_sdr)", "improvement(lsd)",
    ],
    "U-Net separation inference": [
        "fp32, one chunk at a time", "fp32, batched chunks", "bf16 autocast, batched chunks",
    ],
    "Training steps per second": ["U-Net separator", "BLSTM restorer", "GAN restorer"],
}  # fmt: skip


def _tables(out: str) -> dict[str, list[list[str]]]:
    """Heading -> the data rows (cells) of the Markdown table under it."""
    tables = {}
    for part in out.split("\n## ")[1:]:
        title, _, body = part.partition("\n")
        lines = [line for line in body.splitlines() if line.startswith("|")]
        assert len(lines) >= 3 and set(lines[1]) <= set("|-"), f"no table under {title!r}:\n{body}"
        tables[title] = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    return tables


def _number(cell: str) -> float:
    return float(re.search(r"-?[\d.]+(?:e-?\d+)?", cell.replace(",", "")).group())


@pytest.mark.slow
def test_smallest_run_on_cpu_prints_every_table(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "CHORALES_ROOT": str(tmp_path / "absent")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--gpu", "--size", "tiny"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = proc.stdout
    assert re.search(r"^no CUDA device: .* CPU figures follow", out, re.M)
    assert "chorales rendered for this run" in out
    tables = _tables(out)
    assert list(tables) == list(SECTIONS)
    for title, labels in SECTIONS.items():
        rows = tables[title]
        assert [r[0] for r in rows if r[0] in labels or r[0].startswith(tuple(labels))], title
        for label in labels:
            assert any(r[0].startswith(label) for r in rows), (title, label)
        for row in rows:
            assert not any(c.startswith("error:") for c in row), row
    # The figures are figures, and the agreements agree.
    haaqi = tables["HAAQI: batch of 8 chorale stems vs MP3 32 kbit/s"]
    assert _number(haaqi[1][-1].split("max abs diff")[1]) < 1e-6
    for row in tables["BSSEval v4: museval vs musicbench"][1:]:
        diffs = [_number(part.split()[1]) for part in row[-1].split(", ")]
        assert len(diffs) == 4 and max(diffs) < 1e-3, row
    separation = {r[0]: r for r in tables["U-Net separation inference"]}
    assert _number(separation["fp32, batched chunks"][-1]) > 60  # dB: the same chunks, batched
    assert _number(separation["bf16 autocast, batched chunks"][-1]) > 20
    for row in tables["Training steps per second"]:
        # A bf16 loss may turn non-finite on some CPUs (a measured finding); fp32 must train.
        if row[2] == "32-true" or not row[3].startswith("non-finite"):
            assert _number(row[3]) > 0, row


def test_accelerator_rows_get_a_cpu_reference(monkeypatch, capsys, tiny_chorales_root):
    """The rows that compare a device with the CPU, run here with the CPU standing in for the device."""
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import common, gpu
    from benchmarks.gpu import support

    monkeypatch.setattr(common, "CHORALES_ROOT", tiny_chorales_root)
    monkeypatch.setattr(support, "accelerated", lambda device: True)
    assert gpu.main(["--size", "tiny", "--only", "metrics"]) == 0
    rows = _tables(capsys.readouterr().out)["SDR family and restoration metrics"]
    names = [r[0] for r in rows]
    assert names == [n for n in SECTIONS["SDR family and restoration metrics"] for _ in range(2)]
    for reference, device in zip(rows[::2], rows[1::2], strict=True):
        assert reference[-1] == "" and device[-1] == "max abs diff 0.0e+00", (reference, device)
        assert reference[5] == device[5]  # the same values
