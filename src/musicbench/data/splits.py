"""The split names that every dataset, datamodule and the ``mb-data`` CLI use.

Datamodules serve three splits (:data:`SPLITS`). Datasets in the MUSDB18 layout have two folders on disk
(:data:`SPLIT_FOLDERS`): as in MUSDB18, the validation tracks are a named subset of ``train/``, not a
folder of their own.
"""

from __future__ import annotations

TRAIN = "train"
VALID = "valid"
TEST = "test"

SPLITS: tuple[str, ...] = (TRAIN, VALID, TEST)
SPLIT_FOLDERS: tuple[str, ...] = (TRAIN, TEST)


def check_split(split: str) -> str:
    """Return ``split`` if it is one of :data:`SPLITS`, else raise ValueError listing them."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split
