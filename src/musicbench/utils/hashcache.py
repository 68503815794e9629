"""File content hashes, computed once and cached by ``(path, size, mtime_ns)``.

The fingerprints of datasets (run folders, per-track results) and the checks against dataset manifests
need the sha256 of every audio file. Reading ~10-30 GB on every start would take minutes, so each hash is
stored in a small JSON file (``file_hashes.json`` in the cache folder) and trusted while the file keeps
its size and modification time. A file changed in place gets a new mtime and is hashed again; a copy of a
dataset elsewhere is hashed once more and gives the same hashes (the hash is of the content only).

The cache folder: ``paths.cache_dir`` in the configs, set with :func:`set_cache_dir`; else
``$MB_CACHE_DIR``, else ``$XDG_CACHE_HOME/musicbench``, else ``~/.cache/musicbench``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from musicbench.utils.files import sha256_file, write_json_atomic

log = logging.getLogger(__name__)

CACHE_NAME = "file_hashes.json"
CACHE_VERSION = 1
_cache_dir: Path | None = None
_default: FileHashes | None = None


def default_cache_dir() -> Path:
    """``$MB_CACHE_DIR``, else ``$XDG_CACHE_HOME/musicbench``, else ``~/.cache/musicbench``."""
    if os.environ.get("MB_CACHE_DIR"):
        return Path(os.environ["MB_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "musicbench"


def set_cache_dir(path: str | os.PathLike | None) -> None:
    """Use ``path`` (``None``: :func:`default_cache_dir`) for :func:`file_hashes` from now on."""
    global _cache_dir, _default
    _cache_dir = Path(path).expanduser() if path else None
    _default = None


def file_hashes() -> FileHashes:
    """The process-wide hash cache in the configured cache folder."""
    global _default
    directory = _cache_dir or default_cache_dir()
    if _default is None or _default.path.parent != directory:
        _default = FileHashes(directory / CACHE_NAME)
    return _default


class FileHashes:
    """sha256 hex digests of files, cached in the JSON file ``path`` by ``(resolved path, size, mtime_ns)``.

    :meth:`sha256` hashes a file on a miss and keeps the result in memory; :meth:`save` merges the new
    entries into the file (with what other processes wrote meanwhile) and drops entries of files that are
    gone. An unreadable or unwritable cache file costs only time: hashes are computed again.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._entries: dict[str, list] = self._read()
        self._new: dict[str, list] = {}

    def _read(self) -> dict[str, list]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring the unreadable hash cache %s (%s): files are hashed again", self.path, exc)
            return {}
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}
        entries = data.get("files")
        return entries if isinstance(entries, dict) else {}

    def cached(self, path: str | os.PathLike) -> str | None:
        """The cached hash of ``path`` if its size and mtime are unchanged, else ``None``."""
        key, size, mtime = _stat(path)
        entry = self._new.get(key) or self._entries.get(key)
        if entry and entry[0] == size and entry[1] == mtime:
            return str(entry[2])
        return None

    def sha256(self, path: str | os.PathLike) -> str:
        """The sha256 of ``path``'s bytes: from the cache, or read now (call :meth:`save` to keep it)."""
        found = self.cached(path)
        if found is not None:
            return found
        key, size, mtime = _stat(path)
        digest = sha256_file(path)
        if _stat(path)[1:] == (size, mtime):  # not modified while it was read
            self._new[key] = [size, mtime, digest]
        return digest

    def save(self) -> None:
        """Write the new entries to the cache file (atomically; a failure is logged, not raised)."""
        if not self._new:
            return
        merged = {**self._read(), **self._new}
        merged = {k: v for k, v in merged.items() if os.path.exists(k)}
        try:
            write_json_atomic(self.path, {"version": CACHE_VERSION, "files": merged}, indent=None)
        except OSError as exc:
            log.warning("cannot write the hash cache %s (%s): files will be hashed again", self.path, exc)
            return
        self._entries, self._new = merged, {}


def _stat(path: str | os.PathLike) -> tuple[str, int, int]:
    """``(resolved path, size in bytes, mtime in ns)`` of a file."""
    resolved = Path(path).resolve()
    st = resolved.stat()
    return str(resolved), int(st.st_size), int(st.st_mtime_ns)
