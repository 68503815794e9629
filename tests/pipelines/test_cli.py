"""``mb-cadenza`` end to end on a generated CAD1 layout, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from musicbench.data.cadenza import Cad1Task1
from musicbench.data.tracks import DatasetError
from musicbench.errors import UserError

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _run(*args, check=True):
    return subprocess.run([str(BIN / "mb-cadenza"), *args], capture_output=True, text=True, check=check)


def test_enhance_evaluate_then_package(cad1_root, tmp_path):
    out = tmp_path / "run"
    common = [
        f"paths.cad1_root={cad1_root}",
        "pipeline.data.songs=[Song B - Two]",
        "pipeline.progress=false",
        "~pipeline.demixers.mixture",
        f"hydra.run.dir={out}",
    ]
    done = _run(*common)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recipe"] == "cad1_task1" and summary["num_items"] == 2
    assert 0.5 < summary["systems"]["oracle"]["haaqi"] <= 1
    assert "oracle" in done.stdout and "HAAQI" in done.stdout
    _run(*common, "stages=[package]", "submission.system=oracle", "submission.team_id=T007")
    assert (out / "submission_T007.zip").is_file()


def test_a_bad_root_is_one_error_line(tmp_path):
    failed = _run(f"paths.cad1_root={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    assert failed.returncode == 1
    assert "error: CAD1 root not found" in failed.stderr and "paths.cad1_root" in failed.stderr
    unknown = _run(
        f"paths.cad1_root={tmp_path}",
        "stages=[enhance,score]",
        f"hydra.run.dir={tmp_path / 'r'}",
        check=False,
    )
    assert unknown.returncode == 1 and "unknown ['score']" in unknown.stderr


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: (r / "metadata" / "listeners.valid.json").unlink(), "listeners file not found"),
        (
            lambda r: (r / "metadata" / "musdb18.valid.json").write_text('[{"Split": "train"}]'),
            "'Track Name'",
        ),
        (lambda r: (r / "metadata" / "musdb18.valid.json").write_text("[{"), "not valid JSON"),
        (lambda r: (r / "audio" / "musdb18hq" / "train" / "Song A - One" / "bass.wav").unlink(), "bass.wav"),
    ],
)
def test_bad_metadata_names_the_file_and_key(cad1_factory, tmp_path, damage, message):
    root = cad1_factory(tmp_path / "cad1", {"Song A - One": "train"}, seconds=0.5)
    damage(root)
    with pytest.raises(UserError, match=message):  # DatasetError, or AudioFileError for audio
        Cad1Task1(root, "valid")


def test_unknown_listener_and_missing_test_segments(cad1_factory, tmp_path):
    root = cad1_factory(tmp_path / "cad1", {"Song A - One": "test"}, seconds=0.5, split="test")
    with pytest.raises(DatasetError, match=r"no listener \['L9'\]"):
        Cad1Task1(root, "test", listeners=["L9"])
    (root / "metadata" / "musdb18.segments.test.json").write_text("{}")
    with pytest.raises(DatasetError, match="no segments for song 'Song A - One'"):
        Cad1Task1(root, "test")


def _compose(overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from musicbench.utils.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("cadenza", overrides=overrides, return_hydra_config=False)


def test_every_pipeline_option_composes_and_instantiates(cad1_root, tiny_cadenza_root):
    import hydra

    cadenza_root = tiny_cadenza_root
    from musicbench.utils.config import CONFIG_DIR

    options = sorted(p.stem for p in (CONFIG_DIR / "pipeline").glob("*.yaml"))
    assert options == ["cad1_task1", "chorales_rebalance", "chorales_seed_entry"]
    for option in options:
        cfg = _compose(
            [f"pipeline={option}", f"paths.cad1_root={cad1_root}", f"paths.cadenza_root={cadenza_root}"]
        )
        assert cfg.name == option
        pipeline = hydra.utils.instantiate(cfg.pipeline, _convert_="partial")
        assert set(pipeline.demixers) == {"oracle", "mixture"} and pipeline.items()
