"""Copying the files a leaderboard reads out of run folders, into a folder that can be committed
(``experiments/<study>/runs``): ``mb-leaderboard ... --export-runs DIR``.

Per run folder: ``summary.json``, ``results/<track>.json`` without their framewise values (``frames``:
the track values the leaderboard uses are in ``scores``; the frames stay in the run folder), the stored
config and the command-line overrides; no checkpoints, logs or audio. Absolute paths in them are made
relative to ``root`` (the folder the study was run from) or to ``~``, so the copies name no folder of the
machine they were made on. A run is copied to ``DIR/<run name>/<run folder name>`` (the run folder's name
is its config signature), replacing an older copy of the same run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from musicbench.leaderboard.load import RESULTS, SUMMARY, Run

CONFIGS = ("config.yaml", ".hydra/config.yaml", ".hydra/overrides.yaml")  # what load.py reads


def export_runs(runs: Iterable[Run], dest: str | Path, root: str | Path = ".") -> list[Path]:
    """Copy each run folder's leaderboard files to ``dest/<run.name>/<run folder name>``.

    Args:
        runs: loaded runs (:func:`musicbench.leaderboard.load.load_run`); museval imports are skipped
            (they are not run folders).
        dest: the folder to copy into (created).
        root: absolute paths under it are written relative to it.

    Returns:
        The copies, in the order of ``runs``. Each is written to a temporary folder next to it and then
        renamed into place: an interrupted export leaves the previous copy or none, never half of one.
    """
    dest, root = Path(dest), Path(root).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    copies = []
    for run in runs:
        if run.kind == "museval":
            continue
        target = dest / run.name / run.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{run.path.name}.", dir=target.parent))
        try:
            tmp.chmod(0o777 & ~_umask())  # mkdtemp's folder is private; the copy is not
            _copy_run(run.path, tmp, root)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        copies.append(target)
    return copies


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _copy_run(src: Path, dst: Path, root: Path) -> None:
    summary = json.loads((src / SUMMARY).read_text())
    _write_json(dst / SUMMARY, _relative(summary, root))
    (dst / RESULTS).mkdir()
    for path in sorted((src / RESULTS).glob("*.json")):
        if path.name.startswith("."):  # an atomic write's temporary
            continue
        result = json.loads(path.read_text())
        result.pop("frames", None)
        _write_json(dst / RESULTS / path.name, _relative(result, root))
    # The stored config (the run folder's, else Hydra's copy: the one the loader reads) and the overrides.
    configs = [next((n for n in CONFIGS[:2] if (src / n).is_file()), None), CONFIGS[2]]
    for name in filter(None, configs):
        if (src / name).is_file():
            (dst / name).parent.mkdir(exist_ok=True)
            data = yaml.safe_load((src / name).read_text())
            (dst / name).write_text(yaml.safe_dump(_relative(data, root), sort_keys=False))


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def _relative(value: Any, root: Path) -> Any:
    """``value`` with every absolute path string under ``root`` made relative to it (``.`` for ``root``
    itself), and those under the home folder written ``~/...``."""
    if isinstance(value, dict):
        return {k: _relative(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v, root) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        path = Path(value)
        for base, prefix in ((root, ""), (Path.home(), "~/")):
            if path == base or base in path.parents:
                rel = path.relative_to(base).as_posix()
                return prefix + rel if rel != "." else (prefix.rstrip("/") or ".")
    return value
