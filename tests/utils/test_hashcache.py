"""The file hash cache: computed once, trusted while size and mtime hold, shared between processes."""

import hashlib
import json
import os

import pytest

from musicbench.utils import hashcache
from musicbench.utils.hashcache import FileHashes


@pytest.fixture
def counted(monkeypatch):
    """Counts the files that are really read (hashed)."""
    calls = []
    real = hashcache.sha256_file

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(hashcache, "sha256_file", counting)
    return calls


def test_a_hash_is_read_once_and_kept_in_the_cache_file(tmp_path, counted):
    file = tmp_path / "a.bin"
    file.write_bytes(b"abc" * 1000)
    cache = tmp_path / "cache" / "file_hashes.json"
    first = FileHashes(cache)
    assert first.sha256(file) == hashlib.sha256(file.read_bytes()).hexdigest()
    first.save()
    assert json.loads(cache.read_text())["files"][str(file.resolve())][2] == first.sha256(file)
    again = FileHashes(cache)  # another process: reads the cache file
    assert again.sha256(file) == first.sha256(file)
    assert counted == [str(file)]


def test_a_changed_file_is_hashed_again(tmp_path, counted):
    file = tmp_path / "a.bin"
    file.write_bytes(b"a" * 100)
    hashes = FileHashes(tmp_path / "h.json")
    before = hashes.sha256(file)
    hashes.save()
    st = file.stat()
    file.write_bytes(b"b" * 100)  # same size, new content
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    after = FileHashes(tmp_path / "h.json").sha256(file)
    assert after != before and after == hashlib.sha256(b"b" * 100).hexdigest()
    assert len(counted) == 2


def test_save_merges_other_writers_and_drops_deleted_files(tmp_path):
    a, b, gone = (tmp_path / n for n in ("a", "b", "gone"))
    for f in (a, b, gone):
        f.write_text(f.name)
    cache = tmp_path / "h.json"
    one, two = FileHashes(cache), FileHashes(cache)
    one.sha256(a)
    one.sha256(gone)
    one.save()
    gone.unlink()
    two.sha256(b)
    two.save()
    files = json.loads(cache.read_text())["files"]
    assert set(files) == {str(a.resolve()), str(b.resolve())}


def test_an_unreadable_cache_file_costs_only_time(tmp_path, caplog):
    cache = tmp_path / "h.json"
    cache.write_text("{not json")
    file = tmp_path / "a"
    file.write_text("x")
    assert FileHashes(cache).sha256(file) == hashlib.sha256(b"x").hexdigest()
    assert "unreadable hash cache" in caplog.text


def test_the_cache_folder_follows_the_configuration(tmp_path, monkeypatch):
    monkeypatch.setenv("MB_CACHE_DIR", str(tmp_path / "env"))
    hashcache.set_cache_dir(None)
    assert hashcache.file_hashes().path == tmp_path / "env" / hashcache.CACHE_NAME
    hashcache.set_cache_dir(tmp_path / "cfg")
    assert hashcache.file_hashes().path == tmp_path / "cfg" / hashcache.CACHE_NAME
    hashcache.set_cache_dir(None)
