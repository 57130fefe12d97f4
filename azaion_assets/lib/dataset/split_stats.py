"""Videos and frames per split of a formed dataset, and the videos found in train and test.

Shared by forming (the metadata and ``manifest.json``) and the dataset check, which counts the
dataset as it is on disk against the split record (``split_record``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from azaion_assets.lib.dataset.video_split import SPLITS


@dataclass
class SourceStats:
    """Videos and frames per split of one dataset; what the dataset check tests."""

    videos: dict[str, int]  # distinct groups: a frame without a known video counts as one
    frames: dict[str, int]
    unsourced: dict[str, int]  # frames without a known video
    grandfathered: int  # frames kept in a split other than their video's
    grandfathered_videos: int  # videos holding such frames
    straddling: list[str] = field(default_factory=list)  # videos in train and test otherwise

    def to_json(self) -> dict:
        return {
            "videos": self.videos,
            "frames": self.frames,
            "unsourced": self.unsourced,
            "grandfathered": self.grandfathered,
            "grandfathered_videos": self.grandfathered_videos,
            "straddling": self.straddling,
        }


def tally(
    frames: dict[str, int], sourced: Iterable[tuple[str, str, bool]], videos: dict[str, str]
) -> SourceStats:
    """Count a dataset: its ``frames`` per split, and ``(split, video, grandfathered)`` of each
    frame whose video is known, against the videos' splits.

    A frame is grandfathered where its split is not its video's and was set before the video
    was known; a video straddles where its other frames are in both train and test.
    """
    with_video = Counter[str]()
    in_split: dict[str, set[str]] = {s: set() for s in SPLITS}
    conforming: dict[str, set[str]] = {}
    kept: set[str] = set()
    grandfathered = 0
    for split, video, gf in sourced:
        with_video[split] += 1
        in_split[split].add(video)
        if gf and split != videos.get(video, split):
            grandfathered += 1
            kept.add(video)
        else:
            conforming.setdefault(video, set()).add(split)
    unsourced = {s: frames.get(s, 0) - with_video[s] for s in SPLITS}
    return SourceStats(
        videos={s: len(in_split[s]) + unsourced[s] for s in SPLITS},
        frames={s: frames.get(s, 0) for s in SPLITS},
        unsourced=unsourced,
        grandfathered=grandfathered,
        grandfathered_videos=len(kept),
        straddling=sorted(v for v, s in conforming.items() if {"train", "test"} <= s),
    )
