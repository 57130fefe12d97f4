"""Stable train/valid/test split by source video.

Azaion annotations are frames of videos, and neighbouring frames are near-identical: frame 100
in test and frame 101 in train would make the test score optimistic. So the split is drawn per
group, the annotation's source video (``original_media_name``, stripped; an annotation without
one is its own group), and an annotation keeps the split it was first given in every later
dataset (``split_record``): a test image never leaks into a later training set. A new video's
split is ``assign_split(video)``; new frames of a known video join its recorded split. Splits
set by name before this rule (and before a frame's video was known) are kept: grandfathered.

The bucket is the first 8 bytes of a BLAKE2b hash, which is stable across Python versions and
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
    """The split of a group key (a video, or a lone annotation's name) for (train, valid, test)
    percentages that add up to 100."""
    train, valid, _ = percentages
    b = bucket(name)
    if b < train:
        return "train"
    if b < train + valid:
        return "valid"
    return "test"
