"""mb-restore's pieces: the input brought to the model's channels and rate, output names, bad arguments."""

from __future__ import annotations

import pytest
import torch

from musicbench.models.restoration import IdentityRestorer
from musicbench.restore import main, output_paths, prepare_input, restore_file


def identity(rate=88200):
    model = IdentityRestorer(sample_rate=rate, chunk_seconds=0.5, context_seconds=0.0, crossfade_seconds=0.1)
    model.audio_channels = 2
    return model.eval()


def test_mono_input_is_duplicated_and_resampled_to_the_model_rate():
    t = torch.arange(44100) / 44100
    mono = (0.5 * torch.sin(2 * torch.pi * 1000 * t))[None]
    x = prepare_input(mono, 44100, identity(88200))
    assert x.shape == (2, 88200) and torch.equal(x[0], x[1])
    # The 1-kHz tone keeps its level through the resampler (away from the edges).
    assert x[0, 1000:-1000].abs().max() == pytest.approx(0.5, abs=1e-3)


def test_more_channels_than_the_model_is_an_error():
    with pytest.raises(ValueError, match=r"2-channel audio, the file has 3 channels: downmix"):
        prepare_input(torch.zeros(3, 100), 44100, identity())


def test_a_deterministic_model_gives_one_restoration_of_the_whole_file():
    x = torch.randn(2, 88200 + 123, generator=torch.Generator().manual_seed(0))
    (out,) = restore_file(identity(), x, num_samples=3)  # the identity has no samples to draw
    torch.testing.assert_close(out, x)


def test_output_paths(tmp_path):
    src = tmp_path / "in" / "song.mp3"
    assert output_paths(src, None, "flac", 1) == [tmp_path / "in" / "song.restored.flac"]
    assert output_paths(src, tmp_path, "wav", 2) == [
        tmp_path / "song.restored_0.wav",
        tmp_path / "song.restored_1.wav",
    ]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--samples", "0"], "--samples must be >= 1"),
        (["--subtype", "FLOAT"], "FLAC has no float subtype"),
        ([], "input files not found: .*missing.mp3"),
    ],
)
def test_bad_arguments_are_one_error_line(tmp_path, capsys, args, message):
    assert main([str(tmp_path), str(tmp_path / "missing.mp3"), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:")
    import re

    assert re.search(message, err)
