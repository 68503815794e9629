"""``mb-restore``: restore audio files with a trained restoration model, e.g. MP3s to 24-bit hi-res FLAC.

Examples::

    mb-restore outputs/train/restore_hires_lstm_88k/<sig> song.mp3             # -> song.restored.flac
    mb-restore RUN music/*.mp3 --out restored/ --format wav                     # 24-bit wav files
    mb-restore outputs/train/restore_gan_mp3_32k/<sig> song.mp3 --samples 3     # 3 draws of a GAN

Each file is read (any format libsndfile reads: wav, flac, ogg, mp3), brought to the model's channels
and rate (soxr), restored in full (overlap-add of chunks with cross-fades, as in evaluation) and
written atomically at the model's rate (``model.sample_rate``: the target rate of a hi-res model) as
24-bit PCM by default. A restoration that exceeds full scale is scaled down to -0.1 dBFS, never clipped,
and the gain is printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import hydra
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from musicbench.audio.io import pcm_safe_gain, read_audio, write_audio
from musicbench.checkpoints import find_checkpoint, load_checkpoint
from musicbench.data.mp3_cache import resample
from musicbench.errors import ConfigError, UserError, user_message
from musicbench.models.base import track_seed
from musicbench.models.restoration import RestorationModule
from musicbench.utils.progress import progress_bar

log = logging.getLogger(__name__)
FORMATS = ("flac", "wav")


def build_parser() -> argparse.ArgumentParser:
    """The command-line arguments of ``mb-restore``."""
    p = argparse.ArgumentParser(
        prog="mb-restore",
        description="Restore audio files with a restoration model trained by mb-train (e.g. MP3 -> 24-bit hi-res).",
    )
    p.add_argument(
        "checkpoint", type=Path, help="a .ckpt file or a training run folder (its best checkpoint)"
    )
    p.add_argument("inputs", type=Path, nargs="+", help="audio files to restore (wav, flac, ogg, mp3)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: next to each input)")
    p.add_argument("--format", choices=FORMATS, default="flac", help="output container (default: flac)")
    p.add_argument(
        "--subtype", default="PCM_24", help="soundfile subtype: PCM_24 (default), PCM_16, FLOAT (wav only)"
    )
    p.add_argument(
        "--samples",
        type=int,
        default=1,
        help="restorations per file of a stochastic model (each its own file)",
    )
    p.add_argument("--seed", type=int, default=0, help="noise seed of a stochastic model")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def load_restorer(checkpoint: Path, device: str = "cpu") -> tuple[RestorationModule, Path]:
    """The restoration model of a checkpoint (or a run folder's best one), in eval mode on ``device``.

    Raises:
        ConfigError: the checkpoint holds another kind of model (e.g. a separator).
    """
    ckpt = find_checkpoint(checkpoint)
    state, stored = load_checkpoint(ckpt)
    model = hydra.utils.instantiate(stored.model)
    if not isinstance(model, RestorationModule):
        raise ConfigError(
            f"{ckpt} holds a {type(model).__name__}, not a restoration model: mb-restore needs a checkpoint "
            "of a restoration run (e.g. experiment=restore_hires_lstm_88k)"
        )
    model.load_state_dict(state["state_dict"])
    return model.eval().to(device), ckpt


def prepare_input(audio: torch.Tensor, rate: int, model: RestorationModule) -> torch.Tensor:
    """``(C, T)`` float32 at ``rate`` Hz -> ``(C', T')`` with the model's channels (mono duplicated, or
    stereo averaged for a mono model) at the model's rate ``model.sample_rate`` Hz.

    Raises:
        UserError: more channels than the model has and it is not mono.
    """
    channels = int(getattr(model, "audio_channels", audio.shape[0]))
    if audio.shape[0] != channels:
        if audio.shape[0] == 1:
            audio = audio.expand(channels, -1)
        elif channels == 1:
            audio = audio.mean(0, keepdim=True)
        else:
            raise RestoreError(
                f"the model restores {channels}-channel audio, the file has {audio.shape[0]} channels: "
                "downmix it first (e.g. ffmpeg -ac 2)"
            )
    out = resample(np.ascontiguousarray(audio.numpy(), dtype=np.float32), rate, model.sample_rate)
    return torch.from_numpy(out)


class RestoreError(UserError, ValueError):
    """An input ``mb-restore`` cannot restore; the message names the file and what to do."""


def restore_file(
    model: RestorationModule, audio: torch.Tensor, num_samples: int = 1, seed: int = 0, name: str = ""
) -> list[torch.Tensor]:
    """Restorations ``[(C, T), ...]`` of one prepared input ``(C, T)``: one for a deterministic model,
    ``num_samples`` seeded draws (seed and ``name``) for a stochastic one."""
    with torch.inference_mode():
        x = audio.to(next(iter(model.parameters()), torch.empty(0)).device)[None]
        sample = getattr(model, "sample", None)
        if sample is not None and num_samples > 1:
            return [s[0].cpu() for s in sample(x, num_samples=num_samples, seed=track_seed(name, seed))]
        if sample is not None:
            return [sample(x, num_samples=1, seed=track_seed(name, seed))[0, 0].cpu()]
        return [model.separate(x)[0, 0].cpu()]


def output_paths(src: Path, out_dir: Path | None, fmt: str, count: int) -> list[Path]:
    """``<out_dir or src's folder>/<src stem>.restored[_k].<fmt>`` for ``count`` restorations."""
    folder = out_dir if out_dir is not None else src.parent
    names = (
        [f"{src.stem}.restored.{fmt}"]
        if count == 1
        else [f"{src.stem}.restored_{k}.{fmt}" for k in range(count)]
    )
    return [folder / n for n in names]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mb-restore`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    console = Console(stderr=True, soft_wrap=True)
    try:
        return _run(args, console)
    except (UserError, OSError) as exc:
        console.print(f"[red]error:[/red] {user_message(exc) or exc}", highlight=False, markup=True)
        return 1


def _run(args: argparse.Namespace, console: Console) -> int:
    if args.samples < 1:
        raise RestoreError(f"--samples must be >= 1, got {args.samples}")
    if args.subtype == "FLOAT" and args.format == "flac":
        raise RestoreError("FLAC has no float subtype: use --format wav with --subtype FLOAT, or PCM_24")
    missing = [str(p) for p in args.inputs if not p.is_file()]
    if missing:
        raise RestoreError(f"input files not found: {', '.join(missing)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    model, ckpt = load_restorer(args.checkpoint, args.device)
    console.print(
        f"model: {ckpt} ({type(model).__name__}, output at {model.sample_rate} Hz)", highlight=False
    )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    table = Table("file", "in", "out", "seconds", "gain dB", "time s")
    with progress_bar(not args.no_progress, label="restore") as bar:
        task = bar.add_task("", total=len(args.inputs))
        for src in args.inputs:
            bar.update(task, description=src.name)
            audio, rate = read_audio(src)
            start = time.perf_counter()
            outs = restore_file(model, prepare_input(audio, rate, model), args.samples, args.seed, src.stem)
            gain = pcm_safe_gain(outs)
            if gain != 1.0:
                log.warning(
                    "%s: the restoration exceeds full scale; scaled by %.2f dB", src, 20 * np.log10(gain)
                )
            paths = output_paths(src, args.out, args.format, len(outs))
            for path, out in zip(paths, outs, strict=True):
                write_audio(path, out.numpy() * gain, model.sample_rate, subtype=args.subtype)
            seconds = audio.shape[-1] / rate
            table.add_row(
                ", ".join(p.name for p in paths),
                f"{rate} Hz",
                f"{model.sample_rate} Hz {args.subtype}",
                f"{seconds:.1f}",
                f"{20 * np.log10(gain):.2f}" if gain != 1.0 else "0",
                f"{time.perf_counter() - start:.1f}",
            )
            bar.advance(task)
    Console(soft_wrap=True).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
