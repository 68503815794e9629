"""Integration: the hi-res restoration presets (MP3 at 44.1 kHz in, 88.2 kHz out) through the real CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from musicbench.data.mp3_cache import resample

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
TINY_LSTM = ["model.net.hidden_size=16", "model.net.num_layers=1"]
TINY_GAN = [
    "model.generator.depth=2",
    "model.generator.base_channels=4",
    "model.critic.depth=2",
    "model.critic.base_channels=4",
    "model.num_samples=2",
]


def _train(tmp_path, root, preset, tiny_mp3_run, *args) -> Path:
    env = {**os.environ, "MB_OUTPUT_ROOT": str(tmp_path / "outputs")}
    cmd = [
        str(BIN / "mb-train"),
        f"experiment={preset}",
        *tiny_mp3_run,
        "evaluator.excerpts=1",
        "evaluator.excerpt_seconds=1.0",
        "model.chunk_seconds=1.5",
        "model.context_seconds=0.25",
        "model.crossfade_seconds=0.25",
        *args,
        f"paths.chorales_hires_root={root}",
        f"data.cache_dir={tmp_path}/cache",
    ]
    subprocess.run(cmd, check=True, env=env, cwd=tmp_path)
    (run,) = list((tmp_path / "outputs" / "train" / preset).iterdir())
    return run


def test_hires_blstm_trains_scores_the_extension_band_and_writes_24_bit_excerpts(
    tmp_path, tiny_hires_chorales_root, tiny_mp3_run
):
    run = _train(tmp_path, tiny_hires_chorales_root, "restore_hires_lstm_88k", tiny_mp3_run, *TINY_LSTM)
    summary = json.loads((run / "summary.json").read_text())
    model, mp3 = (summary["systems"][s]["median"]["clean"] for s in ("model", "input"))
    assert set(model) == {"snr", "si_sdr", "lsd", "lsd_missing", "lsd_ext"}
    # The input is the MP3 resampled to 88.2 kHz: the extension band (> 22.05 kHz) is missing from it.
    assert mp3["lsd_ext"] > 1.0 and mp3["lsd_missing"] > 1.0
    (excerpt,) = list((run / "excerpts").iterdir())
    for name in ("clean", "input", "restored_0"):
        info = sf.info(excerpt / f"{name}.wav")
        assert (info.samplerate, info.subtype) == (88200, "PCM_24")
    assert json.loads((excerpt / "excerpt.json").read_text())["sample_rate"] == 88200
    # The restoration has content above 22.05 kHz, which the input does not.
    import numpy as np

    def above(name):
        x, sr = sf.read(excerpt / f"{name}.wav")
        spec = np.abs(np.fft.rfft(x.mean(1) * np.hanning(len(x)))) ** 2
        return spec[np.fft.rfftfreq(len(x), 1 / sr) > 23000].sum() / spec.sum()

    assert above("restored_0") > 10 * above("input")

    # mb-restore: a 44.1-kHz MP3 file in, a 24-bit 88.2-kHz FLAC out.
    from musicbench.audio.io import read_audio
    from musicbench.audio.mp3 import Mp3Codec

    track = next((tiny_hires_chorales_root / "test").iterdir()) / "mixture.wav"
    clean, rate = read_audio(track)
    low = torch.from_numpy(resample(clean.numpy(), rate, 44100))
    (tmp_path / "song.mp3").write_bytes(Mp3Codec(bitrate=128).encode(low, 44100))
    out = subprocess.run(
        [str(BIN / "mb-restore"), str(run), str(tmp_path / "song.mp3"), "--out", str(tmp_path / "hires"), "--no-progress"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert "song.restored.flac" in out.stdout
    info = sf.info(tmp_path / "hires" / "song.restored.flac")
    assert (info.samplerate, info.subtype, info.channels) == (88200, "PCM_24", 2)
    assert abs(info.frames - 2 * read_audio(tmp_path / "song.mp3")[0].shape[-1]) <= 2


def test_hires_gan_reports_diversity_in_the_extension_band(tmp_path, tiny_hires_chorales_root, tiny_mp3_run):
    run = _train(
        tmp_path,
        tiny_hires_chorales_root,
        "restore_hires_gan_88k",
        tiny_mp3_run,
        *TINY_GAN,
        "evaluator.excerpts=0",
    )
    summary = json.loads((run / "summary.json").read_text())
    assert {"sample_0", "sample_1", "mean", "best_of_k", "diversity", "input"} <= set(summary["systems"])
    div = summary["systems"]["diversity"]["median"]["clean"]
    assert {"pairwise_lsd", "pairwise_lsd_ext", "pairwise_snr"} <= set(div)
    assert summary["systems"]["sample_0"]["median"]["clean"]["lsd_ext"] > 0
