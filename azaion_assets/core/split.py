"""Stable train/valid/test split by annotation name.

The split of an image depends only on its name, never on what else is in the dataset. So an
image keeps its split in every later dataset, and a test image never leaks into a later training
set. The bucket is the first 8 bytes of a BLAKE2b hash, which is stable across Python versions and
processes (unlike ``hash()``).
"""

from __future__ import annotations

import hashlib

SPLITS = ("train", "valid", "test")
_BUCKETS = 10_000


def bucket(name: str) -> float:
    """A stable number in [0, 100) for ``name``."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") % _BUCKETS) * 100 / _BUCKETS


def assign_split(name: str, percentages: tuple[int, int, int]) -> str:
    """The split of ``name`` for (train, valid, test) percentages that add up to 100."""
    train, valid, _ = percentages
    b = bucket(name)
    if b < train:
        return "train"
    if b < train + valid:
        return "valid"
    return "test"
