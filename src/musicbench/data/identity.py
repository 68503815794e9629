"""The identity of a dataset: what run folders and per-track results are keyed by, instead of its path.

Every track has a fingerprint, a digest of the content of its files (``track.fingerprint(hashes)``: the
sha256 of every configured stem's file, cached by :mod:`musicbench.utils.hashcache`; for an MP3 pair, its
cache key, which hashes the clean file's content and every codec setting). A split's digest covers its
track names and fingerprints. Moving or copying a dataset keeps its identity; changing a byte of a file
that is used changes it.

- Per-track results carry their track's fingerprint in their digest (``evaluation.model``), so a changed
  track is evaluated again and an unchanged one is reused.
- ``mb-train`` records the identity of every split in ``<run folder>/data.json`` and refuses to continue
  a run folder on other data (:func:`check_run_data`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from musicbench.data.index import MissingRootError
from musicbench.data.splits import SPLITS
from musicbench.errors import UserError
from musicbench.utils.files import write_json_atomic
from musicbench.utils.hashcache import FileHashes, file_hashes
from musicbench.utils.progress import progress_bar
from musicbench.utils.provenance import digest_of

log = logging.getLogger(__name__)

DATA_JSON = "data.json"
IDENTITY_VERSION = 1
# The outputs of a run folder that were computed from its data.
_DERIVED = ("checkpoints/*.ckpt", "results/*.json")


class DataChangedError(UserError, RuntimeError):
    """A run folder holds outputs computed on other data than the data configured now."""


def split_fingerprints(
    datamodule: Any, split: str, hashes: FileHashes | None = None, progress: bool | None = None
) -> dict[str, str]:
    """``{track name: fingerprint}`` of the tracks of ``split``, in the datamodule's order.

    Hashes of files that are not cached yet are computed now (with a progress bar on a terminal, unless
    ``progress`` says otherwise) and saved to the cache.
    """
    hashes = hashes or file_hashes()
    tracks = datamodule.tracks(split)
    show = sys.stderr.isatty() if progress is None else progress
    out = {}
    with progress_bar(show and bool(tracks), label=f"fingerprint {split}") as bar:
        task = bar.add_task("", total=len(tracks))
        for track in tracks:
            bar.update(task, description=track.name)
            out[track.name] = track.fingerprint(hashes)
            bar.advance(task)
    hashes.save()
    return out


def split_digest(fingerprints: dict[str, str]) -> str:
    """The digest of one split: its track names and their fingerprints."""
    return digest_of(sorted(fingerprints.items()))


def dataset_identity(
    datamodule: Any, splits: Sequence[str] = SPLITS, progress: bool | None = None
) -> dict[str, Any]:
    """The identity of ``splits`` of a datamodule's data, after checking its manifest hashes (if any).

    Returns ``{"version", "root", "digest", "splits": {split: {"digest", "tracks": {name: fingerprint}}}}``;
    ``root`` (absolute) is for messages only: it is not part of any digest.

    Raises:
        DatasetError: the data cannot be read, or a file differs from its manifest's sha256.
    """
    hashes = file_hashes()
    datamodule.check_files(hashes)
    datamodule.prepare_data()  # MP3 pairs: every split's missing pairs in one pool (a no-op elsewhere)
    per_split = {}
    for split in splits:
        tracks = split_fingerprints(datamodule, split, hashes, progress)
        per_split[split] = {"digest": split_digest(tracks), "tracks": tracks}
    return {
        "version": IDENTITY_VERSION,
        "root": str(Path(datamodule.root).expanduser().resolve()),
        "digest": digest_of({s: v["digest"] for s, v in per_split.items()}),
        "splits": per_split,
    }


def check_run_data(run_dir: str | Path, identity: dict[str, Any], record: bool = True) -> None:
    """Record ``identity`` in ``<run_dir>/data.json``, or refuse a run folder computed on other data.

    ``record=False`` only checks (the processes of a multi-process training other than the first).

    A folder whose ``data.json`` names other data and that holds checkpoints or results computed from it
    raises :class:`DataChangedError` naming the splits and tracks that differ, the old and new roots,
    and how to start fresh. The same data at another path is accepted (``data.json`` then names the new
    root).
    """
    run_dir = Path(run_dir)
    path = run_dir / DATA_JSON
    derived = [p for pattern in _DERIVED for p in run_dir.glob(pattern) if not p.name.startswith(".")]
    if path.is_file():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataChangedError(
                f"cannot read {path} ({exc}): the identity of the data this run folder was computed on is "
                "unknown. Delete the file to accept the current data, or start a fresh run (run_id=<new>)."
            ) from exc
        if recorded.get("digest") != identity["digest"] and derived:
            raise DataChangedError(describe_change(run_dir, recorded, identity))
        if recorded.get("root") != identity["root"] and recorded.get("digest") == identity["digest"]:
            log.info(
                "the data moved from %s to %s; same content, so %s is reused",
                recorded.get("root"),
                identity["root"],
                run_dir,
            )
    elif derived:
        log.warning(
            "%s has outputs but no %s (written by an older version): the data they were computed on cannot "
            "be checked; recording the current data",
            run_dir,
            DATA_JSON,
        )
    if record:
        write_json_atomic(path, identity)


def describe_change(run_dir: Path, old: dict[str, Any], new: dict[str, Any]) -> str:
    """What differs between two identities, and how to start fresh, as one message."""
    lines = []
    old_splits = old.get("splits", {})
    for split, entry in new["splits"].items():
        before = old_splits.get(split, {}).get("tracks", {})
        after = entry["tracks"]
        changed = sorted(n for n in after if n in before and before[n] != after[n])
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        parts = [
            f"{label} {_names(names)}"
            for label, names in (("changed", changed), ("added", added), ("removed", removed))
            if names
        ]
        if parts:
            lines.append(f"{split}: " + ", ".join(parts))
    what = "; ".join(lines) or "the recorded identity differs"
    return (
        f"the run folder {run_dir} was computed on other data (recorded in {run_dir / DATA_JSON}): {what}. "
        f"Data root then: {old.get('root')}, now: {new['root']}. Resuming would mix a model and results of "
        "the old data with the new. To train on the new data, start a fresh run folder (add run_id=<any new "
        f"value>, or delete {run_dir}); to continue this run, point the data config back at the old data."
    )


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown} (+{len(names) - limit} more)" if len(names) > limit else shown


_PATHS_REF = re.compile(r"^\$\{paths\.(\w+)\}$")
_ENV_REF = re.compile(r"oc\.env:(\w+)")


def root_hint(cfg: DictConfig, root: Any) -> str:
    """The config key (and environment variable) that sets the dataset root ``root``, as advice.

    Finds the ``data`` key whose value is ``${paths.<key>}`` and resolves to ``root``, and the ``oc.env``
    variable in that ``paths`` key's default. Empty when no such key is found.
    """
    data = cfg.get("data")
    if not isinstance(data, DictConfig):
        return ""
    raw = OmegaConf.to_container(data, resolve=False)
    for key in _paths_refs(raw):
        value = OmegaConf.select(cfg, f"paths.{key}", default=None)
        if value is None or _resolved(value) != _resolved(root):
            continue
        node = cfg.paths._get_node(key)
        env = _ENV_REF.search(str(node._value())) if node is not None else None
        alternative = f" or set ${env.group(1)}" if env else ""
        return f"It is set by paths.{key}: pass paths.{key}=/path/to/the/dataset{alternative}."
    return ""


def _resolved(path: Any) -> Path:
    return Path(str(path)).expanduser().resolve()


def _paths_refs(node: Any) -> Iterator[str]:
    """The ``paths`` keys that values of ``node`` (a plain container) refer to as ``${paths.<key>}``."""
    if isinstance(node, dict):
        for v in node.values():
            yield from _paths_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _paths_refs(v)
    elif isinstance(node, str) and (m := _PATHS_REF.match(node)):
        yield m.group(1)


@contextlib.contextmanager
def naming_root_key(cfg: DictConfig) -> Iterator[None]:
    """Re-raise a :class:`~musicbench.data.index.MissingRootError` with the config key that sets the root."""
    try:
        yield
    except MissingRootError as exc:
        hint = root_hint(cfg, exc.root)
        if not hint:
            raise
        raise MissingRootError(exc.root, exc.problem, exc.how_to_get, hint) from None
