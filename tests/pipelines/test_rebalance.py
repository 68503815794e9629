"""The chorale rebalancing recipe (CAD2 Task 2 style) on a tiny generated Cadenza layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicbench.data.cadenza_chorales import CadenzaScenes
from musicbench.pipelines.cadenza.demixers import MixtureDemixer, OracleDemixer
from musicbench.pipelines.cadenza.rebalance import HearingAid, RebalancePipeline, adjust_level

COMPRESSOR = dict(attack=[11] * 6, release=[80] * 6, threshold=[-30] * 6, ratio=2.0, makeup_gain=0.0)


@pytest.fixture(scope="module")
def scenes(tiny_cadenza_root) -> CadenzaScenes:
    return CadenzaScenes(tiny_cadenza_root, "test")


def test_adjust_level_is_cad2_s():
    # Equal gains of g dB: the compensation is -g dB, so the remix keeps its level.
    assert adjust_level(np.ones(3), [6.0, 6.0]) == pytest.approx(10 ** (-6 / 20))


def test_hearing_aid_amplifies_for_a_loss_and_not_for_normal_hearing(scenes):
    listeners = scenes.listeners()
    groups = {lid: g["severity"] for lid, g in scenes.listener_groups().items()}
    normal = next(listeners[lid] for lid, g in groups.items() if g == "normal")
    loss = next(listeners[lid] for lid, g in groups.items() if g in ("moderate", "severe"))
    aid = HearingAid(compressor=None, bandpass=None)
    tone = torch.sin(2 * torch.pi * 3000 * torch.arange(44100) / 44100).repeat(2, 1) * 0.01
    gain = [float(aid(tone, who)[:, 4410:].square().mean() / tone.square().mean()) for who in (normal, loss)]
    assert gain[1] > 10 * gain[0]  # NAL-R gives >10 dB more at 3 kHz for the loss


def test_oracle_beats_mixture_and_a_rerun_recomputes_nothing(scenes, tmp_path):
    pipeline = RebalancePipeline(
        scenes,
        {"oracle": OracleDemixer(), "mixture": MixtureDemixer(0.25)},
        HearingAid(compressor=COMPRESSOR),
        progress=False,
    )
    pipeline.enhance(tmp_path)
    pipeline.evaluate(tmp_path)
    summary = pipeline.merge(tmp_path)
    oracle, mixture = summary["systems"]["oracle"], summary["systems"]["mixture"]
    assert summary["num_items"] == 2 * len(scenes.pairs())
    assert oracle["haaqi"] > mixture["haaqi"] and oracle["snr"] > mixture["snr"] + 20
    rows = (tmp_path / "oracle" / "scores.csv").read_text().splitlines()
    assert rows[0] == "scene,song,listener,left_haaqi,right_haaqi,avg_haaqi,snr,sdr"
    assert len(rows) == 1 + len(scenes.pairs())
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "results").glob("*.json")}
    pipeline.enhance(tmp_path)
    pipeline.evaluate(tmp_path)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "results").glob("*.json")} == before


def test_a_trained_separator_demixes_and_a_stem_mismatch_is_refused(
    scenes, tiny_chorales_root, tmp_path, cad1_root
):
    import subprocess
    import sys
    from pathlib import Path

    from musicbench.data.cadenza import Cad1Task1
    from musicbench.errors import ConfigError
    from musicbench.pipelines.cadenza.demixers import CheckpointDemixer

    run = tmp_path / "train"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "mb-train"),
            "debug=tiny",
            f"paths.chorales_root={tiny_chorales_root}",
            "test=false",
            "callbacks.progress_bar=null",
            f"hydra.run.dir={run}",
        ],
        check=True,
        capture_output=True,
    )
    demixer = CheckpointDemixer(str(run), device="cpu")
    assert demixer.sources == list(scenes.instruments) and len(demixer.id) == 64
    pipeline = RebalancePipeline(scenes, {"model": demixer}, HearingAid(compressor=None), progress=False)
    item = pipeline.items()[0]
    stems = pipeline.demix("model", pipeline.audio, item.scene.piece, item.scene.piece, scenes.instruments)
    mixture = pipeline.audio.stem(item.scene.piece, "mixture")
    assert set(stems) == set(scenes.instruments)
    assert all(s.shape == mixture.shape and np.isfinite(s).all() for s in stems.values())
    assert not np.allclose(stems["soprano"], stems["bass"])
    cad1 = Cad1Task1(cad1_root, "valid")
    with pytest.raises(ConfigError, match=r"not \['vocals', 'drums', 'other'\]"):
        demixer(cad1, cad1.songs[0], cad1.stems)


def test_per_stem_hearing_aid_differs_and_is_linear_without_a_compressor(scenes):
    listener = next(iter(scenes.listeners().values()))
    scene = scenes.scenes[0]
    stems = {i: scenes.load_stems(scene.piece)[0][k].numpy().T for k, i in enumerate(scenes.instruments)}
    demixers = {"oracle": OracleDemixer()}

    def processed(per_stem, compressor):
        pipeline = RebalancePipeline(
            scenes, demixers, HearingAid(compressor=compressor), per_stem=per_stem, progress=False
        )
        return pipeline._process(stems, scene, listener)

    # NAL-R and the band-pass are linear: per voice or on the remix, the same output.
    np.testing.assert_allclose(processed(True, None), processed(False, None), atol=1e-9)
    # A compressor is not: compressing each voice is another hearing aid.
    assert np.abs(processed(True, COMPRESSOR) - processed(False, COMPRESSOR)).max() > 1e-3
