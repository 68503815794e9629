import json
import math
import os
import stat

import pytest

from musicbench.utils.files import atomic_path, sha256_file, write_json_atomic, write_text_atomic


def test_atomic_path_renames_on_success_only(tmp_path):
    target = tmp_path / "sub" / "out.wav"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".out.") and tmp.suffix == ".wav"
        tmp.write_bytes(b"data")
        assert not target.exists()
    assert target.read_bytes() == b"data"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash")
    assert target.read_bytes() == b"data"
    assert [p.name for p in target.parent.iterdir()] == ["out.wav"]  # no temporary left behind


def test_atomic_files_get_the_umask_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_json_keeps_nan_and_key_order(tmp_path):
    path = write_json_atomic(tmp_path / "r.json", {"b": math.nan, "a": 1})
    text = path.read_text()
    assert text.endswith("\n") and text.index('"b"') < text.index('"a"') and "NaN" in text
    assert math.isnan(json.loads(text)["b"])


def test_sha256_of_a_file_read_in_chunks(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1000)
    import hashlib

    assert sha256_file(path, chunk_bytes=7) == hashlib.sha256(b"abc" * 1000).hexdigest()
