"""MusdbDataModule on tiny generated datasets in MUSDB18-HQ (wav) and MUSDB18 (.stem.mp4) layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from musicbench.data.augment import ChannelSwap, RandomGain
from musicbench.data.loading import EpochSampler
from musicbench.data.musdb import DatasetError, MusdbDataModule, Track

SR = 8000
SATB = ["soprano", "alto", "tenor", "bass"]
MUSDB = ["drums", "bass", "other", "vocals"]
GAIN_AND_SWAP = {"gain": RandomGain(-6.0, 3.0), "channel_swap": ChannelSwap(p=0.5)}


def datamodule(root: Path, sources: list[str] = SATB, **kwargs) -> MusdbDataModule:
    kwargs = {
        "sample_rate": SR,
        "chunk_seconds": 0.25,
        "samples_per_epoch": 8,
        "batch_size": 4,
        "augmentations": GAIN_AND_SWAP,
        **kwargs,
    }
    return MusdbDataModule(root, sources, **kwargs)


# --------------------------------------------------------------------------------------- shapes / splits
def test_splits_and_batch_shapes(chorale_root: Path) -> None:
    dm = datamodule(chorale_root, valid_segment_seconds=0.3, eval_batch_size=2)
    assert [t.name for t in dm.tracks("train")] == ["a", "b"]
    assert [t.name for t in dm.tracks("valid")] == ["c"]
    assert [t.name for t in dm.tracks("test")] == ["t1", "t2"]
    track = dm.tracks("valid")[0]
    assert isinstance(track, Track)
    assert (track.split, track.sources, track.sample_rate, track.num_frames) == ("valid", tuple(SATB), SR, SR)
    assert dm.format == "wav"

    dm.setup("fit")
    mixture, targets = next(iter(dm.train_dataloader()))
    assert mixture.shape == (4, 2, 2000) and targets.shape == (4, 4, 2, 2000)
    assert mixture.dtype == targets.dtype == torch.float32

    # 1 s track, 0.3 s segments: the 3 segments that fit entirely (the last 0.1 s is left out).
    val_batches = list(dm.val_dataloader())
    assert [b[0].shape for b in val_batches] == [(2, 2, 2400), (1, 2, 2400)]
    assert val_batches[0][1].shape == (2, 4, 2, 2400)

    dm.setup("test")
    test_batches = list(dm.test_dataloader())
    assert len(test_batches) == 2
    mixture, targets = test_batches[0]
    assert mixture.shape == (1, 2, SR) and targets.shape == (1, 4, 2, SR)
    # Test items are the files as they are: the mixture file and the sources in the configured order.
    ref = sf.read(chorale_root / "test" / "t1" / "alto.wav", dtype="float32", always_2d=True)[0].T
    np.testing.assert_array_equal(targets[0, 1].numpy(), ref)
    ref_mix = sf.read(chorale_root / "test" / "t1" / "mixture.wav", dtype="float32", always_2d=True)[0].T
    np.testing.assert_array_equal(mixture[0].numpy(), ref_mix)


def test_full_track_validation_and_source_order(chorale_root: Path) -> None:
    order = ["bass", "soprano", "tenor", "alto"]  # any order of the manifest's sources; targets follow it
    dm = datamodule(chorale_root, sources=order, valid_segment_seconds=None)
    dm.setup("validate")
    (mixture, targets), *rest = list(dm.val_dataloader())
    assert not rest and mixture.shape == (1, 2, SR) and targets.shape == (1, 4, 2, SR)
    ref = sf.read(chorale_root / "train" / "c" / "bass.wav", dtype="float32", always_2d=True)[0].T
    np.testing.assert_array_equal(targets[0, 0].numpy(), ref)


def test_train_mixture_is_sum_of_augmented_targets(chorale_root: Path) -> None:
    dm = datamodule(chorale_root, remix_prob=0.5, augmentations=GAIN_AND_SWAP)
    dm.setup("fit")
    for i in range(8):
        mixture, targets = dm.train_set[i]
        torch.testing.assert_close(mixture, targets.sum(0))


def test_augmentation_changes_targets_relative_to_files(plain_root: Path) -> None:
    """With gains on, a training target is the file chunk scaled by a gain in the configured range."""
    dm = datamodule(
        plain_root, sources=MUSDB, valid_tracks=None, augmentations={"gain": RandomGain(-6.0, 3.0)}
    )
    dm.setup("fit")
    _, targets = dm.train_set[0]
    ratios = []
    for s in range(4):
        # Every source file is a tone of amplitude 0.2 (RMS 0.2/sqrt(2)) plus faint noise, wherever the chunk
        # starts, so the RMS of a target relative to that gives the applied gain.
        rms = targets[s, 0].pow(2).mean().sqrt().item()
        ratios.append(20 * np.log10(rms / (0.2 / np.sqrt(2))))
    assert all(-6.5 < r < 3.5 for r in ratios)
    assert np.ptp(ratios) > 0.1  # independent gains per source


def test_same_seed_same_items_different_seed_different(chorale_root: Path) -> None:
    kwargs = dict(remix_prob=0.3)
    a = datamodule(chorale_root, seed=1, **kwargs)
    b = datamodule(chorale_root, seed=1, **kwargs)
    c = datamodule(chorale_root, seed=2, **kwargs)
    for dm in (a, b, c):
        dm.setup("fit")
    for i in (0, 5, 123):
        torch.testing.assert_close(a.train_set[i], b.train_set[i], rtol=0, atol=0)
    assert not torch.equal(a.train_set[0][0], c.train_set[0][0])
    # Different indices are different items.
    assert not torch.equal(a.train_set[0][0], a.train_set[1][0])


def test_epochs_draw_new_items_and_workers_do_not_change_them(chorale_root: Path) -> None:
    dm0 = datamodule(chorale_root, num_workers=0)
    dm2 = datamodule(chorale_root, num_workers=2)
    dm0.setup("fit")
    dm2.setup("fit")
    loader0, loader2 = dm0.train_dataloader(), dm2.train_dataloader()
    assert isinstance(loader0.sampler, EpochSampler)
    loader0.sampler.set_epoch(0)
    epoch0 = [b[0] for b in loader0]
    loader0.sampler.set_epoch(1)
    epoch1 = [b[0] for b in loader0]
    assert not torch.equal(epoch0[0], epoch1[0])
    # Same seed: the same batches whatever the number of workers (items depend on (seed, index) only).
    loader2.sampler.set_epoch(1)
    epoch1_workers = [b[0] for b in loader2]
    for x, y in zip(epoch1, epoch1_workers, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_lightning_fit_runs_with_the_datamodule(chorale_root: Path) -> None:
    """The datamodule plugs into a Trainer: training sees new chunks each epoch, validation runs."""
    import pytorch_lightning as pl

    class Probe(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))
            self.first_batches: list[torch.Tensor] = []
            self.val_shapes: list[tuple] = []

        def training_step(self, batch, batch_idx):
            mixture, targets = batch
            if batch_idx == 0:
                self.first_batches.append(mixture.clone())
            return (self.w * mixture.unsqueeze(1) - targets).pow(2).mean()

        def validation_step(self, batch, batch_idx):
            self.val_shapes.append(tuple(batch[1].shape))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    model = Probe()
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=datamodule(chorale_root, valid_segment_seconds=0.5))
    assert len(model.first_batches) == 2
    assert not torch.equal(model.first_batches[0], model.first_batches[1])
    assert model.val_shapes and all(s == (1, 4, 2, 4000) for s in model.val_shapes)


# ----------------------------------------------------------------------------------- validation lists
def test_explicit_and_no_validation_list(plain_root: Path) -> None:
    dm = datamodule(plain_root, sources=MUSDB, valid_tracks=["b"])
    assert [t.name for t in dm.tracks("train")] == ["a", "c"]
    assert [t.name for t in dm.tracks("valid")] == ["b"]
    dm = datamodule(plain_root, sources=MUSDB, valid_tracks=None)
    assert [t.name for t in dm.tracks("train")] == ["a", "b", "c"] and dm.tracks("valid") == []
    dm.setup("fit")
    assert dm.val_dataloader() == []


# ------------------------------------------------------------------------------------- augmentations
def _track_ids(targets: torch.Tensor) -> list[int]:
    """Recover the track index of each source from its dc_level on the left channel."""
    return [round((float(targets[s, 0, 0]) - 0.1 * s) / 0.01) - 1 for s in range(targets.shape[0])]


def test_remix_takes_sources_from_different_tracks(tmp_path: Path, layout) -> None:
    root = layout.make_root(tmp_path / "dc", ["a", "b", "c"], [], SATB, fn=layout.dc_level)
    common = dict(valid_tracks=None, augmentations=None, samples_per_epoch=40)
    plain, remixed = datamodule(root, remix_prob=0.0, **common), datamodule(root, remix_prob=1.0, **common)
    plain.setup("fit")
    remixed.setup("fit")
    plain_ids = [_track_ids(plain.train_set[i][1]) for i in range(40)]
    remix_ids = [_track_ids(remixed.train_set[i][1]) for i in range(40)]
    assert all(len(set(ids)) == 1 for ids in plain_ids)  # no remix: every source from the same track
    assert {ids[0] for ids in plain_ids} == {0, 1, 2}
    assert sum(len(set(ids)) > 1 for ids in remix_ids) > 20  # remix: mostly sources from several tracks
    for i in range(5):
        mixture, targets = remixed.train_set[i]
        torch.testing.assert_close(mixture, targets.sum(0))


def test_channel_swap_per_source(tmp_path: Path, layout) -> None:
    root = layout.make_root(tmp_path / "dc", ["a", "b"], [], SATB, fn=layout.dc_level)
    common = dict(valid_tracks=None, samples_per_epoch=20)
    # A switched-off entry (data.augmentations.channel_swap=null) is no augmentation.
    off = datamodule(root, augmentations={"channel_swap": None}, **common)
    on = datamodule(root, augmentations={"channel_swap": ChannelSwap()}, **common)
    off.setup("fit")
    on.setup("fit")

    def swapped(targets: torch.Tensor) -> list[bool]:
        # Unswapped, the left channel is twice the right one.
        return [bool(targets[s, 1, 0] > targets[s, 0, 0]) for s in range(targets.shape[0])]

    assert not any(any(swapped(off.train_set[i][1])) for i in range(20))
    flags = [swapped(on.train_set[i][1]) for i in range(20)]
    assert any(any(f) for f in flags) and not all(all(f) for f in flags)
    assert any(len(set(f)) > 1 for f in flags)  # sources are swapped independently


def test_silent_chunks_are_redrawn(tmp_path: Path, layout) -> None:
    def half_silent(k: int, s: int, frames: int) -> np.ndarray:
        audio = layout.tonal(k, s, frames)
        audio[:, : frames // 2] = 0.0
        return audio

    root = layout.make_root(tmp_path / "silent", ["a"], [], SATB, seconds=2.0, fn=half_silent)
    common = dict(valid_tracks=None, samples_per_epoch=40, chunk_seconds=0.2)
    no_retry, retry = (
        datamodule(root, silent_chunk_retries=0, **common),
        datamodule(root, silent_chunk_retries=30, **common),
    )
    no_retry.setup("fit")
    retry.setup("fit")

    def silent(mixture: torch.Tensor) -> bool:
        return float(mixture.abs().max()) == 0.0

    assert sum(silent(no_retry.train_set[i][0]) for i in range(40)) >= 5
    assert not any(silent(retry.train_set[i][0]) for i in range(40))


def test_short_tracks_are_zero_padded(tmp_path: Path, layout) -> None:
    root = layout.make_root(tmp_path / "short", ["a"], ["t"], SATB, seconds=0.1, fn=layout.dc_level)
    dm = datamodule(root, valid_tracks=None, chunk_seconds=0.25, augmentations=None)
    dm.setup("fit")
    mixture, targets = dm.train_set[0]
    assert mixture.shape == (2, 2000) and targets.shape == (4, 2, 2000)
    torch.testing.assert_close(targets[1, 0, :800], torch.full((800,), 0.11))
    assert float(targets[..., 800:].abs().max()) == 0.0


# The first sample of each target (source, channel) of items 0-3 below. The draws of an item happen in a
# fixed order (track and offset, remix per source, then each augmentation in config order), so any change of
# order, generator or arithmetic changes these values.
PINNED_ITEMS = [
    [
        [0.007558935321867466, 0.015117870643734932],
        [0.07628973573446274, 0.15257947146892548],
        [0.12019061297178268, 0.24038122594356537],
        [0.13429340720176697, 0.26858681440353394],
    ],
    [
        [0.003442243207246065, 0.00688448641449213],
        [0.08429766446352005, 0.042148832231760025],
        [0.19851581752300262, 0.09925790876150131],
        [0.21361207962036133, 0.10680603981018066],
    ],
    [
        [0.010633868165314198, 0.005316934082657099],
        [0.12350756675004959, 0.061753783375024796],
        [0.05503736436367035, 0.1100747287273407],
        [0.19959379732608795, 0.09979689866304398],
    ],
    [
        [0.011688466183841228, 0.023376932367682457],
        [0.07082375884056091, 0.14164751768112183],
        [0.14128583669662476, 0.2825716733932495],
        [0.2329559624195099, 0.11647798120975494],
    ],
]


def test_items_are_pinned(tmp_path: Path, layout) -> None:
    root = layout.make_root(tmp_path / "dc", ["a", "b", "c"], [], SATB, fn=layout.dc_level)
    dm = datamodule(root, valid_tracks=None, remix_prob=0.5, seed=7)
    dm.setup("fit")
    for i, expected in enumerate(PINNED_ITEMS):
        assert torch.equal(dm.train_set[i][1][:, :, 0], torch.tensor(expected, dtype=torch.float32))


def test_bad_arguments_name_the_key(plain_root: Path) -> None:
    with pytest.raises(ValueError, match="data.fmt"):
        datamodule(plain_root, fmt="flac")
    with pytest.raises(ValueError, match="data.sources"):
        datamodule(plain_root, sources=["vocals", "vocals"])
    with pytest.raises(ValueError, match="eval_batch_size"):
        datamodule(plain_root, valid_segment_seconds=None, eval_batch_size=4)
    with pytest.raises(ValueError, match="remix_prob"):
        datamodule(plain_root, remix_prob=1.5)
    with pytest.raises(
        ValueError, match=r"data\.channel_swap is now the transform data\.augmentations\.channel_swap"
    ):
        datamodule(plain_root, channel_swap=True)
    with pytest.raises(ValueError, match=r"data\.augmentations\.gain must be a transform"):
        datamodule(plain_root, augmentations={"gain": {"low_db": -6.0}})


def test_hyperparameters_load_with_the_weights_only_unpickler(chorale_root: Path, tmp_path: Path) -> None:
    """Checkpoints hold the datamodule's hyperparameters, and resuming loads them weights-only."""
    from omegaconf import OmegaConf

    # As Hydra builds it: the root a string, lists as ListConfig.
    dm = datamodule(str(chorale_root), sources=OmegaConf.create(SATB), valid_tracks=OmegaConf.create(["c"]))
    torch.save(dict(dm.hparams), tmp_path / "hparams.pt")
    loaded = torch.load(tmp_path / "hparams.pt", weights_only=True)
    assert loaded["sources"] == SATB and loaded["valid_tracks"] == ["c"] and "augmentations" not in loaded


# ---------------------------------------------------------------------------------------- .stem.mp4
def test_stem_mp4_format(tmp_path: Path) -> None:
    stempeg = pytest.importorskip("stempeg")
    rate, frames = 44100, 44100
    t = np.arange(frames) / rate
    freqs = {"drums": 220.0, "bass": 440.0, "other": 880.0, "vocals": 1760.0}  # musdb stream order 1..4

    def stems(k: int) -> np.ndarray:
        sources = [0.15 * np.sin(2 * np.pi * (f + 3 * k) * t) for f in freqs.values()]
        data = np.stack([np.sum(sources, axis=0), *sources])  # (5, T): mixture first
        return np.repeat(data[:, :, None], 2, axis=2).astype(np.float32)  # (5, T, 2)

    root = tmp_path / "musdb18"
    for split, names in (("train", ["x", "y"]), ("test", ["z"])):
        for k, name in enumerate(names):
            path = root / split / f"{name}.stem.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            stempeg.write_stems(
                str(path),
                stems(k),
                sample_rate=rate,
                writer=stempeg.StreamsWriter(codec="aac", bitrate=256000),
            )

    sources = ["vocals", "bass"]  # a subset, in another order than the streams
    dm = MusdbDataModule(
        root,
        sources,
        sample_rate=rate,
        valid_tracks=["y"],
        chunk_seconds=0.5,
        batch_size=2,
        samples_per_epoch=2,
    )
    assert dm.format == "stem"
    assert [t.name for t in dm.tracks("train")] == ["x"] and [t.name for t in dm.tracks("valid")] == ["y"]
    track = dm.tracks("test")[0]
    assert track.path.name == "z.stem.mp4" and track.num_frames == frames and track.num_channels == 2

    mixture, targets = track.load(frame_offset=4410, num_frames=22050)
    assert mixture.shape == (2, 22050) and targets.shape == (2, 2, 22050) and targets.dtype == torch.float32
    ref = stems(0)[:, 4410 : 4410 + 22050, 0]

    def corr(x: torch.Tensor, y: np.ndarray) -> float:
        return float(np.corrcoef(x.numpy()[1000:-1000], y[1000:-1000])[0, 1])

    assert corr(mixture[0], ref[0]) > 0.99
    assert corr(targets[0, 0], ref[4]) > 0.99  # vocals = stream 4
    assert corr(targets[1, 0], ref[2]) > 0.99  # bass = stream 2
    assert abs(corr(targets[0, 0], ref[2])) < 0.1

    dm.setup("fit")
    mixture, targets = next(iter(dm.train_dataloader()))
    assert mixture.shape == (2, 2, 22050) and targets.shape == (2, 2, 2, 22050)
    torch.testing.assert_close(mixture, targets.sum(1))
    dm.setup("test")
    mixture, targets = next(iter(dm.test_dataloader()))
    assert mixture.shape == (1, 2, frames) and targets.shape == (1, 2, 2, frames)

    # A missing stream is named: a file with only 3 streams cannot hold "vocals" (stream 4).
    short = root / "test" / "w.stem.mp4"
    stempeg.write_stems(str(short), stems(1)[:3], sample_rate=rate, writer=stempeg.StreamsWriter(codec="aac"))
    with pytest.raises(DatasetError, match="'w'.*stream 4"):
        MusdbDataModule(root, sources, sample_rate=rate, valid_tracks=["y"]).tracks("test")
    with pytest.raises(DatasetError, match="piano"):
        MusdbDataModule(root, ["piano"], sample_rate=rate, valid_tracks=None).tracks("train")


def test_reads_the_generated_chorales(tiny_chorales_root: Path) -> None:
    """The datamodule serves what `mb-data chorales` writes (manifest sources, validation split, 44.1 kHz)."""
    manifest = json.loads((tiny_chorales_root / "manifest.json").read_text())
    dm = MusdbDataModule(tiny_chorales_root, SATB, chunk_seconds=1.0, batch_size=2, valid_segment_seconds=2.0)
    assert [t.name for t in dm.tracks("valid")] == sorted(manifest["validation_tracks"])
    assert len(dm.tracks("train")) == 3 and len(dm.tracks("test")) == 2
    dm.setup("fit")
    mixture, targets = next(iter(dm.train_dataloader()))
    assert mixture.shape == (2, 2, 44100) and targets.shape == (2, 4, 2, 44100)
    mixture, targets = next(iter(dm.val_dataloader()))
    assert mixture.shape == (1, 2, 88200) and targets.shape == (1, 4, 2, 88200)
    # The generator writes the mixture as the exact sum of the stems; PCM_16 reads back within rounding.
    torch.testing.assert_close(mixture, targets.sum(1), rtol=0, atol=1e-6)
