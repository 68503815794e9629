"""Provenance of results: the code version that computed them and digests of what they depend on."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any


def code_version() -> str:
    """``git describe`` of the checkout the code runs from, else the package version."""
    import musicbench

    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
            check=True,
        )
        return f"{musicbench.__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        return musicbench.__version__


def digest_of(*parts: Any) -> str:
    """A short stable digest of JSON-serialisable parts (config, checkpoint hash...)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
