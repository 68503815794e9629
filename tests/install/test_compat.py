"""The import-time torch/torchaudio pair check."""

from __future__ import annotations

import pytest

from musicbench import _compat


@pytest.mark.parametrize(
    ("torch_version", "torchaudio_version"),
    [
        ("2.11.0", "2.11.0"),
        ("2.11.0+cu130", "2.11.0"),
        ("2.9.1+cpu", "2.9.1+cpu"),
        ("2.10.0.post3", "2.10.0"),
    ],
)
def test_matching_releases_pass(torch_version, torchaudio_version):
    assert _compat.torch_pair_problem(torch_version, torchaudio_version) is None


@pytest.mark.parametrize(
    ("torch_version", "torchaudio_version"), [("2.11.0", "2.11.1"), ("2.12.0", "2.11.0"), ("2.10.0", "2.9.1")]
)
def test_mismatched_releases_name_both_versions_and_the_fix(torch_version, torchaudio_version):
    problem = _compat.torch_pair_problem(torch_version, torchaudio_version)
    assert problem is not None
    assert f"torchaudio {torchaudio_version}" in problem and f"torch {torch_version}" in problem
    assert "make install" in problem and "pip install torch==2.11.0 torchaudio==2.11.0" in problem
    assert problem.count(". ") == 0, "one sentence"


def test_missing_or_unparsable_versions_are_left_to_the_import():
    assert _compat.torch_pair_problem(None, "2.11.0") is None
    assert _compat.torch_pair_problem("2.11.0", None) is None
    assert _compat.torch_pair_problem("not-a-version", "2.11.0") is None


def test_check_raises_import_error_unless_skipped(monkeypatch):
    versions = {"torch": "2.11.0", "torchaudio": "2.11.1"}
    monkeypatch.setattr(_compat, "installed_version", versions.get)
    monkeypatch.delenv(_compat.SKIP_ENV, raising=False)
    with pytest.raises(ImportError, match=r"torchaudio 2\.11\.1 does not load with torch 2\.11\.0"):
        _compat.check_torch_pair()
    monkeypatch.setenv(_compat.SKIP_ENV, "1")
    _compat.check_torch_pair()


def test_the_installed_pair_passes_and_loads():
    _compat.check_torch_pair()
    import torchaudio.functional  # noqa: F401  (the linker error the check exists for)
