"""``mb-data``: generate, verify and inspect datasets.

    mb-data chorales --root DIR --num-tracks N [--max-seconds S] [--num-test K] [--num-valid V]
                     [--seed S] [--sample-rate SR]
    mb-data cadenza --root DIR --chorales-root DIR [--pieces-per-split N] [--scenes-per-piece N]
                    [--listeners-per-split N] [--listeners-per-scene N] [--segment-seconds S]
                    [--max-gain-db DB] [--seed S]
    mb-data verify --root DIR      exit code 1 and the problems listed if the files do not match
    mb-data info --root DIR        a table of the tracks (from manifest.json, or from the folders)

Exit codes: 0 success, 1 a failed check or a dataset that cannot be read, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from musicbench.data.manifest import (
    MANIFEST_NAME,
    dataset_size_bytes,
    load_manifest,
    verify_manifest,
)
from musicbench.data.splits import SPLIT_FOLDERS
from musicbench.errors import UserError, user_message


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``mb-data`` argument parser with the subcommands ``chorales``, ``verify`` and ``info``."""
    parser = argparse.ArgumentParser(prog="mb-data", description="Generate, verify and inspect datasets.")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("chorales", help="generate the embedded Bach chorale dataset (no download)")
    gen.add_argument("--root", type=Path, required=True, help="output folder (MUSDB18-HQ layout)")
    gen.add_argument("--num-tracks", type=_positive_int, required=True, help="number of chorales")
    gen.add_argument("--max-seconds", type=_positive_float, default=30.0, help="crop length (s)")
    gen.add_argument("--num-test", type=int, default=None, help="test tracks (default: 25%%)")
    gen.add_argument(
        "--num-valid", type=int, default=None, help="validation tracks within train (default: 15%%)"
    )
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--sample-rate", type=_positive_int, default=44100, help="Hz")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")

    cad = sub.add_parser(
        "cadenza", help="the chorales in the Cadenza CAD2 task 2 layout (scenes, gains, listeners)"
    )
    cad.add_argument("--root", type=Path, required=True, help="output folder")
    cad.add_argument(
        "--chorales-root", type=Path, required=True, help="chorale dataset; generated there if missing"
    )
    cad.add_argument("--num-chorales", type=_positive_int, default=32, help="chorales to generate if missing")
    cad.add_argument(
        "--chorale-seconds", type=_positive_float, default=30.0, help="their crop length (s) if generated"
    )
    cad.add_argument("--pieces-per-split", type=_positive_int, default=4)
    cad.add_argument("--scenes-per-piece", type=_positive_int, default=2)
    cad.add_argument("--listeners-per-split", type=_positive_int, default=6)
    cad.add_argument("--listeners-per-scene", type=_positive_int, default=3)
    cad.add_argument("--segment-seconds", type=_positive_float, default=8.0, help="excerpt length (s)")
    cad.add_argument("--max-gain-db", type=int, default=10, help="gains are whole dB in [-DB, DB]")
    cad.add_argument("--seed", type=int, default=0)
    cad.add_argument("--no-progress", action="store_true", help="no progress bar")

    for name, text in (("verify", "check every file against manifest.json"), ("info", "list the tracks")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--root", type=Path, required=True, help="dataset folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mb-data`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    console = Console(soft_wrap=True)  # messages keep their lines; tables size themselves
    commands = {"chorales": _cmd_chorales, "cadenza": _cmd_cadenza, "verify": _cmd_verify, "info": _cmd_info}
    try:
        return commands[args.command](args, console)
    except (UserError, ValueError, ImportError, OSError) as exc:  # bad data, arguments, files, disk
        message = user_message(exc) or str(exc)
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {message}", highlight=False)
        return 1


def _cmd_chorales(args: argparse.Namespace, console: Console) -> int:
    from musicbench.data.chorales import generate_chorales  # music21 is slow to import; only here

    start = time.perf_counter()
    manifest = generate_chorales(
        args.root,
        num_tracks=args.num_tracks,
        max_seconds=args.max_seconds,
        num_test=args.num_test,
        num_valid=args.num_valid,
        seed=args.seed,
        sample_rate=args.sample_rate,
        progress=not args.no_progress,
    )
    elapsed = time.perf_counter() - start
    seconds = sum(t["duration"] for t in manifest["tracks"])
    splits = ", ".join(f"{s}: {len(n)}" for s, n in manifest["splits"].items())
    console.print(
        f"chorales at {args.root}: {len(manifest['tracks'])} tracks ({splits}; "
        f"{len(manifest['validation_tracks'])} of train for validation), {seconds / 60:.1f} min of audio, "
        f"{dataset_size_bytes(args.root) / 1e6:.1f} MB, {elapsed:.1f} s",
        highlight=False,
    )
    return 0


def _cmd_cadenza(args: argparse.Namespace, console: Console) -> int:
    from musicbench.data.cadenza_chorales import build_cadenza_chorales

    start = time.perf_counter()
    if not (args.chorales_root / MANIFEST_NAME).is_file():
        from musicbench.data.chorales import generate_chorales  # music21 is slow to import; only here

        generate_chorales(
            args.chorales_root,
            num_tracks=args.num_chorales,
            max_seconds=args.chorale_seconds,
            progress=not args.no_progress,
        )
    index, written = build_cadenza_chorales(
        args.root,
        args.chorales_root,
        pieces_per_split=args.pieces_per_split,
        scenes_per_piece=args.scenes_per_piece,
        listeners_per_split=args.listeners_per_split,
        listeners_per_scene=args.listeners_per_scene,
        segment_seconds=args.segment_seconds,
        max_gain_db=args.max_gain_db,
        seed=args.seed,
        progress=not args.no_progress,
    )
    splits = "; ".join(
        f"{s}: {n['pieces']} pieces, {n['scenes']} scenes, {n['listeners']} listeners, {n['pairs']} pairs"
        for s, n in index["splits"].items()
    )
    links = "+".join(index["audio_links"]) or "no"
    state = "written" if written else "up to date"
    console.print(
        f"cadenza at {args.root} ({state}): {splits}; audio {links} from {args.chorales_root}, "
        f"{time.perf_counter() - start:.1f} s",
        highlight=False,
    )
    return 0


def _cmd_verify(args: argparse.Namespace, console: Console) -> int:
    problems = verify_manifest(args.root)
    if problems:
        console.print(f"[red]{len(problems)} problem(s)[/red] in {args.root}:", highlight=False)
        for problem in problems:
            console.print(f"  {problem}", highlight=False)
        return 1
    n_files = sum(len(t["files"]) for t in load_manifest(args.root)["tracks"])
    console.print(f"OK: {n_files} files in {args.root} match {MANIFEST_NAME}", highlight=False)
    return 0


def _cmd_info(args: argparse.Namespace, console: Console) -> int:
    root = args.root
    if (root / MANIFEST_NAME).is_file():
        table = _manifest_table(load_manifest(root))
    elif any((root / s).is_dir() for s in SPLIT_FOLDERS):
        table = _folder_table(root)
    else:
        raise FileNotFoundError(
            f"{root} has neither {MANIFEST_NAME} nor train/ or test/ folders; "
            "point --root at a MUSDB18-HQ style dataset or generate one with `mb-data chorales`"
        )
    console.print(table)
    return 0


def _manifest_table(manifest: dict) -> Table:
    valid = set(manifest.get("validation_tracks", []))
    table = Table(title=f"{manifest['name']}: sources {', '.join(manifest['sources'])}")
    for col in ("split", "track", "duration (s)", "tempo (BPM)", "source"):
        table.add_column(col)
    for t in manifest["tracks"]:
        split = "train (valid)" if t["name"] in valid else t["split"]
        tempo = f"{t['tempo_bpm']:.1f}" if "tempo_bpm" in t else "-"
        table.add_row(split, t["name"], f"{t.get('duration', 0):.2f}", tempo, str(t.get("source", "-")))
    total = sum(t.get("duration", 0) for t in manifest["tracks"])
    table.caption = f"{len(manifest['tracks'])} tracks, {total / 60:.1f} min"
    return table


def _folder_table(root: Path) -> Table:
    """Tracks found on disk in a MUSDB18-HQ layout ``<root>/<split>/<track>/*.wav`` (no manifest)."""
    table = Table(title=f"{root} (no manifest: tracks found on disk)")
    for col in ("split", "track", "files"):
        table.add_column(col)
    count = 0
    for split in SPLIT_FOLDERS:
        tracks = sorted(d for d in (root / split).glob("*") if d.is_dir()) if (root / split).is_dir() else []
        for d in tracks:
            table.add_row(split, d.name, ", ".join(sorted(p.stem for p in d.glob("*.wav"))))
            count += 1
    table.caption = f"{count} tracks"
    return table


if __name__ == "__main__":
    sys.exit(main())
