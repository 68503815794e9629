"""Integration: the Open-Unmix preset trains and is evaluated end to end on the tiny chorale set."""

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def test_umx_preset_trains_and_evaluates(tmp_path, tiny_chorales_root):
    args = [
        "experiment=chorales_umx",
        "debug=tiny",
        "trainer.max_epochs=1",
        "callbacks.progress_bar=null",
        "~evaluator.metrics.bsseval",  # the slow metric; the others keep the test to seconds
        f"paths.chorales_root={tiny_chorales_root}",
        f"paths.output_root={tmp_path}",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run([BIN / "mb-train", *args], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (summary_path,) = tmp_path.glob("train/chorales_umx/*/summary.json")
    summary = json.loads(summary_path.read_text())
    config = yaml.safe_load((summary_path.parent / "config.yaml").read_text())
    # The preset's model with debug=tiny's Open-Unmix size, not the U-Net's keys.
    assert config["model"]["net"] == {
        "_target_": "musicbench.nets.umx.OpenUnmix",
        "_partial_": True,
        "hidden_size": 16,
        "num_layers": 3,
        "dropout": 0.4,
    }
    assert summary["model"] == "musicbench.models.separation.MaskSeparator"
    model = summary["systems"]["model"]["median"]
    assert set(model) == set(config["data"]["sources"])
    values = [v for source in model.values() for v in source.values()]
    assert values and all(isinstance(v, float) for v in values)
    # evaluator=separation's ideal-ratio-mask oracle, with the model's STFT, bounds the model from above.
    assert config["evaluator"]["oracles"]["irm"]["n_fft"] == config["model"]["n_fft"] == 512
    oracle = summary["systems"]["oracle_irm"]["median"]
    for source, metrics in model.items():
        assert set(oracle[source]) == set(metrics)
        for name in ("global_sdr", "si_sdr", "snr"):
            assert math.isfinite(oracle[source][name]) and oracle[source][name] > metrics[name]
    print(f"mb-train experiment=chorales_umx debug=tiny: {time.perf_counter() - t0:.1f} s")
