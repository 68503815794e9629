import musicbench
from musicbench.utils.provenance import code_version, digest_of


def test_digest_is_stable_short_and_order_insensitive_for_dicts():
    a = digest_of({"x": 1, "y": [1, 2]}, "ckpt")
    assert a == digest_of({"y": [1, 2], "x": 1}, "ckpt")
    assert a != digest_of({"x": 1, "y": [2, 1]}, "ckpt")
    assert len(a) == 16 and int(a, 16) >= 0
    assert digest_of(object) == digest_of(object)  # non-JSON values by their str


def test_code_version_starts_with_the_package_version():
    assert code_version().startswith(musicbench.__version__)
