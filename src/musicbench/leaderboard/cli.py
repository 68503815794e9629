"""``mb-leaderboard``: one table of the systems of many run folders, with confidence intervals and tests.

Examples::

    mb-leaderboard outputs/train/chorales_unet                 # every run folder below, recursively
    mb-leaderboard 'outputs/multirun/**' --metric sdr --source vocals bass
    mb-leaderboard experiments/unet_depth --format markdown --out experiments/unet_depth/results.md
    mb-leaderboard outputs/eval --museval sisec/UMX --museval IRM1=sisec/IRM1 --plot boxes.png
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from musicbench.errors import UserError, user_message
from musicbench.leaderboard.errors import LeaderboardError, NoRunsError
from musicbench.leaderboard.export import export_runs
from musicbench.leaderboard.load import find_run_folders, load_museval, load_run
from musicbench.leaderboard.render import FORMATS, render, to_rich
from musicbench.leaderboard.table import build_leaderboard, filter_runs
from musicbench.utils.files import write_text_atomic

_SUFFIX_FORMATS = {".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".html": "html", ".htm": "html"}


def build_parser() -> argparse.ArgumentParser:
    """The command-line arguments of ``mb-leaderboard``."""
    p = argparse.ArgumentParser(
        prog="mb-leaderboard",
        description="Compare the systems of run folders (summary.json + results/) in one table: aggregate over "
        "tracks, bootstrap confidence interval, IQR, Wilcoxon test against the best system.",
    )
    p.add_argument(
        "paths",
        nargs="*",
        help="run folders, folders searched recursively (sweeps, experiments/<study>), or globs",
    )
    p.add_argument(
        "--museval",
        action="append",
        default=[],
        metavar="[NAME=]DIR",
        help="a folder of museval track JSON files (<DIR>/<split>/<track>.json) as one system, NAME or DIR's name",
    )
    g = p.add_argument_group("filters")
    g.add_argument("--task", help="separation, restoration, cadenza")
    g.add_argument("--dataset", help="the data folder's name, e.g. chorales, musdb18hq")
    g.add_argument("--split", help="e.g. test (also the subfolder of --museval folders; default test there)")
    g.add_argument(
        "--metric",
        nargs="+",
        help="metrics to show, e.g. sdr sir, or all (default: the headline metric: sdr, haaqi or lsd)",
    )
    g.add_argument("--source", nargs="+", help="sources to show, e.g. vocals bass (default: all)")
    g.add_argument(
        "--system",
        nargs="+",
        metavar="PATTERN",
        help="system rows to keep, shell patterns of their labels, e.g. 'gan/mean' 'gan/best_of_k' "
        "(the baseline and oracles stay; default: all)",
    )
    s = p.add_argument_group("statistics")
    s.add_argument(
        "--aggregate",
        choices=("auto", "median", "mean"),
        default="auto",
        help="over tracks; auto: median for sdr/sir/sar/isr (SiSEC), mean for the others",
    )
    s.add_argument(
        "--seeds",
        choices=("mean", "separate"),
        default="mean",
        help="runs that differ only by seed: one row, averaged per track (mean), or one row each",
    )
    s.add_argument("--resamples", type=_positive_int, default=10_000, help="bootstrap resamples")
    s.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    s.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (and the plot's jitter)")
    s.add_argument("--alpha", type=float, default=0.05, help="significance level of the tests")
    s.add_argument(
        "--correction", choices=("holm", "none"), default="holm", help="multiple-comparison correction"
    )
    s.add_argument("--lower-is-better", nargs="+", default=[], metavar="METRIC", help="besides lsd, lsd_high")
    s.add_argument(
        "--oracle",
        nargs="+",
        default=[],
        metavar="PREFIX",
        help="besides oracle*: name prefixes of oracle systems",
    )
    o = p.add_argument_group("output")
    o.add_argument("--format", choices=FORMATS, help="default: from --out's suffix, else rich")
    o.add_argument(
        "--out", type=Path, help="write the table to this file (atomically) instead of printing it"
    )
    o.add_argument("--plot", type=Path, action="append", default=[], help="box + strip plot, .png/.svg/.pdf")
    o.add_argument(
        "--diversity-plot",
        type=Path,
        metavar="FILE",
        help="quality vs diversity of stochastic models (their samples, mean, best of K) in the first "
        "column's metric, .png/.svg/.pdf",
    )
    o.add_argument(
        "--export-runs",
        type=Path,
        metavar="DIR",
        help="also copy the runs' summaries, track scores and configs (no frames, checkpoints or audio; "
        "paths made relative to the current folder) to DIR/<name>/<run folder>: a study's committed results",
    )
    return p


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mb-leaderboard`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (UserError, OSError) as exc:
        message = user_message(exc) or str(exc)
        Console(stderr=True, soft_wrap=True).print(
            f"[red]error:[/red] {message}", highlight=False, markup=True
        )
        return 1


def _run(args: argparse.Namespace) -> int:
    if not args.paths and not args.museval:
        raise NoRunsError("give run folders, sweep folders or globs (or --museval folders)")
    if not 0.0 < args.confidence < 1.0:
        raise LeaderboardError(f"--confidence must be in (0, 1), got {args.confidence}")
    runs = [load_run(folder) for folder in find_run_folders(args.paths)] if args.paths else []
    for spec in args.museval:
        name, _, folder = spec.rpartition("=")
        runs.append(load_museval(folder, name or None, split=args.split or "test"))
    board = build_leaderboard(
        runs,
        task=args.task,
        dataset=args.dataset,
        split=args.split,
        metrics=args.metric,
        sources=args.source,
        aggregate=args.aggregate,
        seeds=args.seeds,
        n_resamples=args.resamples,
        confidence=args.confidence,
        seed=args.seed,
        alpha=args.alpha,
        correction=args.correction,
        lower_is_better=args.lower_is_better,
        oracles=["oracle", *args.oracle],
        systems=args.system,
    )
    fmt = args.format or (_SUFFIX_FORMATS.get(args.out.suffix.lower(), "") if args.out else "rich")
    if not fmt:
        raise LeaderboardError(
            f"--out {args.out}: give --format ({', '.join(FORMATS[1:])}) or a .md/.csv/.html name"
        )
    if fmt == "rich" and args.out:
        fmt = "markdown"  # a file has no terminal to draw a rich table in
    console = Console(soft_wrap=False)
    if not console.is_terminal:  # logs and pipes: do not squeeze the columns into 80 characters
        console.width = 250
    status = Console(stderr=True, soft_wrap=True)  # keeps stdout to the table (a CSV piped elsewhere)
    if fmt == "rich":
        console.print(to_rich(board))
    elif args.out:
        write_text_atomic(args.out, render(board, fmt))
        status.print(f"wrote {args.out}", highlight=False)
    else:
        sys.stdout.write(render(board, fmt))
    # The runs the table is made of (the filters as the board resolved them).
    shown = filter_runs(runs, task=board.task, dataset=board.dataset, split=board.split)
    if args.diversity_plot:
        from musicbench.leaderboard.plots import plot_diversity

        plot_diversity(shown, args.diversity_plot, board.columns[0].metric, baseline=board.baseline)
        status.print(f"wrote {args.diversity_plot}", highlight=False)
    if args.export_runs:
        copies = export_runs(shown, args.export_runs, root=Path.cwd())
        status.print(f"copied {len(copies)} run(s) to {args.export_runs}", highlight=False)
    if args.plot:
        from musicbench.leaderboard.plots import plot_leaderboard  # matplotlib is slow to import

        for path in args.plot:
            plot_leaderboard(board, path, seed=args.seed)
            status.print(f"wrote {path}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
