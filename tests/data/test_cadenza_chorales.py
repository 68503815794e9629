"""``mb-data cadenza`` and the Cadenza chorale loader on the tiny chorale set."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from musicbench.audio.io import read_audio
from musicbench.data.cadenza_chorales import (
    AUDIO_DIR,
    CADENZA_SPLITS,
    INDEX_NAME,
    METADATA_DIR,
    CadenzaDataError,
    CadenzaScenes,
    build_cadenza_chorales,
    metadata_path,
)
from musicbench.data.cli import main
from musicbench.errors import UserError
from musicbench.hearing.audiogram import load_listeners

ARGS = ["--listeners-per-split", "5", "--listeners-per-scene", "2", "--segment-seconds", "3", "--no-progress"]
VOICES = ("soprano", "alto", "tenor", "bass")


def _metadata_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / METADATA_DIR).iterdir())} | {
        INDEX_NAME: (root / INDEX_NAME).read_bytes()
    }


@pytest.fixture(scope="module")
def cadenza_root(tiny_chorales_root, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cadenza") / "cad"
    assert main(["cadenza", "--root", str(root), "--chorales-root", str(tiny_chorales_root), *ARGS]) == 0
    return root


@pytest.fixture
def damaged(cadenza_root, tmp_path) -> Path:
    """A private copy of the layout (audio copied), free to damage."""
    root = tmp_path / "cad"
    shutil.copytree(cadenza_root, root)
    return root


def test_layout_files_and_links(cadenza_root, tiny_chorales_root):
    index = json.loads((cadenza_root / INDEX_NAME).read_text())
    assert index["instruments"] == list(VOICES)
    # The tiny set: 6 chorales, 2 test, 1 of the 4 train ones for validation.
    assert {s: n["pieces"] for s, n in index["splits"].items()} == {"train": 3, "valid": 1, "test": 2}
    names = ["music", "scenes", "scene_listeners", "listeners", "listener_groups"]
    for split in CADENZA_SPLITS:
        for name in names:
            assert metadata_path(cadenza_root, name, split).is_file()
    assert metadata_path(cadenza_root, "gains").is_file()
    chorales = json.loads((tiny_chorales_root / "manifest.json").read_text())
    split_of = {t["name"]: t["split"] for t in chorales["tracks"]}
    music = json.loads(metadata_path(cadenza_root, "music", "test").read_text())
    for piece, entry in music.items():
        assert list(entry) == ["mixture", "source_1", "source_2", "source_3", "source_4"]
        assert [e["instrument"] for e in entry.values()] == ["Mixture", *VOICES]
        for e in entry.values():
            linked = cadenza_root / AUDIO_DIR / e["track"]
            original = tiny_chorales_root / split_of[piece] / piece / Path(e["track"]).name
            assert os.path.samefile(linked, original)  # a link, not a copy
    assert index["audio_links"] == ["hardlink"]


def test_scene_schema_and_gains(cadenza_root):
    scenes = json.loads(metadata_path(cadenza_root, "scenes", "valid").read_text())
    gains = json.loads(metadata_path(cadenza_root, "gains").read_text())
    pairs = json.loads(metadata_path(cadenza_root, "scene_listeners", "valid").read_text())
    listeners = load_listeners(metadata_path(cadenza_root, "listeners", "valid"))
    assert list(scenes) == ["S50001", "S50002"]  # 1 piece x 2 scenes, CAD2's valid numbering
    for scene_id, scene in scenes.items():
        assert set(scene) == {"music", "gain"}
        assert set(gains[scene["gain"]]) == {"source_1", "source_2", "source_3", "source_4"}
        assert all(isinstance(v, int) and -10 <= v <= 10 for v in gains[scene["gain"]].values())
        assert len(pairs[scene_id]) == 2 and len(set(pairs[scene_id])) == 2
        assert set(pairs[scene_id]) <= set(listeners)
    assert list(listeners) == [f"L{5001 + i}" for i in range(5)]
    groups = json.loads(metadata_path(cadenza_root, "listener_groups", "valid").read_text())
    assert {g["severity"] for g in groups.values()} == {"normal", "mild", "moderate", "severe"}


def test_rerun_is_a_no_op(cadenza_root, tiny_chorales_root, capsys):
    before = {p: p.stat().st_mtime_ns for p in cadenza_root.rglob("*")}
    assert (
        main(["cadenza", "--root", str(cadenza_root), "--chorales-root", str(tiny_chorales_root), *ARGS]) == 0
    )
    assert "(up to date)" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in cadenza_root.rglob("*")} == before


def test_metadata_is_deterministic_and_seeded(cadenza_root, tiny_chorales_root, tmp_path, capsys):
    again = tmp_path / "again"
    assert main(["cadenza", "--root", str(again), "--chorales-root", str(tiny_chorales_root), *ARGS]) == 0
    assert "(written)" in capsys.readouterr().out
    assert _metadata_bytes(again) == _metadata_bytes(cadenza_root)
    other, _ = build_cadenza_chorales(
        tmp_path / "other",
        tiny_chorales_root,
        listeners_per_split=5,
        listeners_per_scene=2,
        segment_seconds=3.0,
        seed=1,
        progress=False,
    )
    assert other["params"]["seed"] == 1
    gains = metadata_path(tmp_path / "other", "gains").read_bytes()
    assert gains != metadata_path(cadenza_root, "gains").read_bytes()


def test_a_missing_file_is_written_again(damaged, tiny_chorales_root):
    metadata_path(damaged, "scenes", "test").unlink()
    (damaged / AUDIO_DIR / "test").rename(damaged / "moved")
    _, written = build_cadenza_chorales(
        damaged,
        tiny_chorales_root,
        listeners_per_split=5,
        listeners_per_scene=2,
        segment_seconds=3.0,
        progress=False,
    )
    assert written
    assert len(CadenzaScenes(damaged, "test").scenes) == 4


def test_loader_round_trip(cadenza_root):
    data = CadenzaScenes(cadenza_root, "test")
    scenes = json.loads(metadata_path(cadenza_root, "scenes", "test").read_text())
    gains = json.loads(metadata_path(cadenza_root, "gains").read_text())
    pairs = json.loads(metadata_path(cadenza_root, "scene_listeners", "test").read_text())
    assert data.instruments == VOICES and data.sample_rate == 44100
    assert [s.id for s in data.scenes] == sorted(scenes)
    for scene in data.scenes:
        assert scene.piece == scenes[scene.id]["music"]
        raw = gains[scenes[scene.id]["gain"]]
        assert scene.gains == {v: raw[f"source_{i}"] for i, v in enumerate(VOICES, 1)}
        assert list(scene.listener_ids) == pairs[scene.id]
        assert scene.end - scene.start == pytest.approx(3.0)
    assert data.pairs() == [(s, lid) for s in sorted(pairs) for lid in pairs[s]]
    assert data.listeners() == load_listeners(metadata_path(cadenza_root, "listeners", "test"))
    piece = data.pieces[0]
    stems, rate = data.load_stems(piece)
    mixture, _ = data.load_mixture(piece)
    assert stems.shape == (4, 2, 3 * 44100) and stems.dtype == torch.float32 and rate == 44100
    assert torch.allclose(stems.sum(0), mixture, atol=1e-6)  # the mixture is the sum of the stems
    whole, _ = data.load_stems(piece, excerpt=False)
    start = round(data.segment(piece)[0] * rate)
    assert torch.equal(whole[..., start : start + 3 * rate], stems)
    soprano, _ = read_audio(cadenza_root / AUDIO_DIR / "test" / piece / "soprano.wav")
    assert torch.equal(whole[0], soprano)


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_unknown_piece_in_loader(cadenza_root):
    with pytest.raises(CadenzaDataError, match=r"music\.test\.json: no piece 'nope'"):
        CadenzaScenes(cadenza_root, "test").load_stems("nope")


def test_missing_index_and_file(damaged):
    metadata_path(damaged, "listeners", "valid").unlink()
    with pytest.raises(CadenzaDataError, match=r"listeners\.valid\.json is missing"):
        CadenzaScenes(damaged, "valid")
    (damaged / INDEX_NAME).unlink()
    with pytest.raises(UserError, match=r"cadenza\.json is missing; write the layout with `mb-data cadenza"):
        CadenzaScenes(damaged, "valid")


def test_malformed_json(damaged):
    metadata_path(damaged, "scenes", "test").write_text("{not json")
    with pytest.raises(CadenzaDataError, match=r"scenes\.test\.json: not valid JSON"):
        CadenzaScenes(damaged, "test")


def test_unknown_piece_in_scene(damaged):
    _edit(metadata_path(damaged, "scenes", "test"), lambda d: d["S60002"].update(music="bwv000"))
    with pytest.raises(CadenzaDataError, match=r"scenes\.test\.json: scene 'S60002': 'music' is 'bwv000'"):
        CadenzaScenes(damaged, "test")


def test_unknown_listener(damaged):
    _edit(metadata_path(damaged, "scene_listeners", "test"), lambda d: d["S60001"].append("L9999"))
    with pytest.raises(
        CadenzaDataError, match=r"scene_listeners\.test\.json: scene 'S60001': listener 'L9999'"
    ):
        CadenzaScenes(damaged, "test")


def test_gain_for_unknown_instrument(damaged):
    _edit(metadata_path(damaged, "gains"), lambda d: d["G60003"].update(source_9=3))
    with pytest.raises(
        CadenzaDataError, match=r"gains\.json: gain 'G60003': 'source_9' is not an instrument"
    ):
        CadenzaScenes(damaged, "test")


def test_bad_listener_entry(damaged):
    _edit(metadata_path(damaged, "listeners", "test"), lambda d: d["L6002"].pop("audiogram_levels_r"))
    with pytest.raises(CadenzaDataError, match=r"listeners\.test\.json: listener 'L6002': missing key"):
        CadenzaScenes(damaged, "test")


def test_cli_generates_missing_chorales(tmp_path, capsys):
    chorales = tmp_path / "chorales"
    args = ["--num-chorales", "4", "--chorale-seconds", "2", "--pieces-per-split", "1", "--no-progress"]
    assert main(["cadenza", "--root", str(tmp_path / "cad"), "--chorales-root", str(chorales), *args]) == 0
    out = capsys.readouterr().out
    assert (chorales / "manifest.json").is_file() and "cadenza at" in out and "(written)" in out
    assert CadenzaScenes(tmp_path / "cad", "test").scenes[0].end == pytest.approx(2.0)


def test_cli_reports_bad_arguments(tiny_chorales_root, tmp_path, capsys):
    argv = ["cadenza", "--root", str(tmp_path / "c"), "--chorales-root", str(tiny_chorales_root)]
    assert main([*argv, "--listeners-per-split", "2", "--listeners-per-scene", "3", "--no-progress"]) == 1
    assert "listeners_per_scene (3) must not exceed listeners_per_split (2)" in capsys.readouterr().err


def test_symbolic_links_where_hard_links_fail(tiny_chorales_root, tmp_path, monkeypatch):
    def no_hard_links(src, dst):
        raise OSError(18, "Invalid cross-device link")  # EXDEV: another file system

    monkeypatch.setattr(os, "link", no_hard_links)
    index, _ = build_cadenza_chorales(
        tmp_path / "cad", tiny_chorales_root, pieces_per_split=1, progress=False
    )
    assert index["audio_links"] == ["symlink"]
    data = CadenzaScenes(tmp_path / "cad", "valid")
    piece = data.pieces[0]
    assert (tmp_path / "cad" / AUDIO_DIR / "valid" / piece / "bass.wav").is_symlink()
    assert data.load_stems(piece)[0].shape[0] == 4


def test_other_arguments_rewrite_and_drop_stale_pieces(tiny_chorales_root, tmp_path):
    root = tmp_path / "cad"
    build_cadenza_chorales(root, tiny_chorales_root, pieces_per_split=4, progress=False)
    assert len(list((root / AUDIO_DIR / "train").iterdir())) == 3
    index, written = build_cadenza_chorales(root, tiny_chorales_root, pieces_per_split=1, progress=False)
    assert written and index["splits"]["train"]["pieces"] == 1
    kept = [p.name for p in (root / AUDIO_DIR / "train").iterdir()]
    assert kept == CadenzaScenes(root, "train").pieces
    assert len([p for p in tiny_chorales_root.glob("train/*/*.wav") if p.is_file()]) == 20  # originals stay


def test_refuses_a_dataset_that_is_not_the_chorales(tiny_chorales_root, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    manifest = json.loads((tiny_chorales_root / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "name": "musdb18hq"}))
    assert (
        main(["cadenza", "--root", str(tmp_path / "c"), "--chorales-root", str(other), "--no-progress"]) == 1
    )
    assert "'name' is 'musdb18hq', expected 'chorales'" in capsys.readouterr().err
    assert not (tmp_path / "c" / INDEX_NAME).exists()
