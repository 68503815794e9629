"""Import-time check that torch and torchaudio are a pair that loads together.

torchaudio's C++ extension links against the exact torch release it was built for; another release fails
with a linker error deep inside ``import torchaudio`` (e.g. torchaudio 2.11.1 beside torch 2.11.0:
``undefined symbol: torch_exception_get_what_without_backtrace``). Since torchaudio 2.1 every release has
the version number of its torch release, so the check compares the installed versions (from package
metadata, without importing either) and fails with one sentence that says what to run.
"""

from __future__ import annotations

import os
from importlib import metadata

from packaging.version import InvalidVersion, Version

# The pair uv.lock installs (and the GPU machines run); named in the error message.
LOCKED_PAIR = ("2.11.0", "2.11.0")
SKIP_ENV = "MUSICBENCH_SKIP_TORCH_CHECK"


def _release(version: str) -> tuple[int, ...] | None:
    """The release segment of a version (``2.11.0+cu128`` -> ``(2, 11, 0)``), or None when unparsable."""
    try:
        return Version(version).release
    except InvalidVersion:
        return None


def torch_pair_problem(torch_version: str | None, torchaudio_version: str | None) -> str | None:
    """Why ``torch_version`` and ``torchaudio_version`` cannot load together, or None if they can.

    Missing packages (None) and unparsable versions (source builds) are not judged here: a missing
    package fails at its own import with the usual message.
    """
    if torch_version is None or torchaudio_version is None:
        return None
    t, ta = _release(torch_version), _release(torchaudio_version)
    if t is None or ta is None:
        return None
    # Compare major.minor.patch: a 4th segment (post-release rebuilds) does not change the ABI.
    if t[:3] == ta[:3]:
        return None
    torch_ok, audio_ok = LOCKED_PAIR
    return (
        f"torchaudio {torchaudio_version} does not load with torch {torch_version} (torchaudio only loads "
        f"with the torch release it was built for): in a clone of musicbench run 'make install' (it "
        f"installs the pair in uv.lock), or 'pip install torch=={torch_ok} torchaudio=={audio_ok}'; "
        f"set {SKIP_ENV}=1 to skip this check."
    )


def installed_version(package: str) -> str | None:
    """The installed version of ``package`` (distribution name), or None if it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_torch_pair() -> None:
    """Raise ImportError with one sentence if the installed torch and torchaudio cannot load together."""
    if os.environ.get(SKIP_ENV) == "1":
        return
    problem = torch_pair_problem(installed_version("torch"), installed_version("torchaudio"))
    if problem:
        raise ImportError(problem)
