"""The champion's new data: validated annotations it has never seen, fairly sampled by video.

New means in data/ now and not in the dataset the champion was trained on, or there with other
content (an edit). Frames of one video are near-identical, so a long video would otherwise
decide the score alone: each video gives at most ``per_video`` frames, spread over its length,
and videos take turns up to ``total``. Scores are then read per class and per weather mode
(the class slot says which), the same way for the new data and for the champion's test split.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

from azaion_assets.lib.config.datatree import AnnotationDir, DataTree
from azaion_assets.lib.dataset.dataset_sheet import spaced
from azaion_assets.lib.dataset.slices import scan_images
from azaion_assets.lib.dataset.split_record import group_of
from azaion_assets.lib.dataset.video_split import SPLITS
from azaion_assets.lib.ingest.day_totals import weather_mode
from azaion_assets.lib.ingest.ingest_state import IngestState, state_file


@dataclass(frozen=True)
class Sample:
    images: list[Path]  # data/images/<name><ext>, the frames to score
    candidates: int  # new annotations found, before sampling
    videos: int  # source videos (an annotation of unknown source is its own) sampled


def new_annotations(data: AnnotationDir, dataset_dir: Path) -> dict[str, str]:
    """name -> image file name of every annotation in ``data`` that ``dataset_dir`` lacks or
    holds with other content. Datasets hard-link data/'s files, and every write replaces a file
    by rename, so an unchanged annotation shares its inode; where the dataset copied instead
    (another file system), the bytes decide."""
    formed: dict[str, Path] = {}
    inodes: dict[str, int] = {}
    for split in SPLITS:
        folder = Path(dataset_dir) / split / "images"
        if folder.is_dir():
            for name, (fname, inode) in scan_images(folder)[0].items():
                formed[name], inodes[name] = folder / fname, inode
    current, _ = scan_images(data.images)
    changed = {}
    for name, (fname, inode) in current.items():
        if not (data.labels / f"{name}.txt").is_file():
            continue  # an image without its label is not a validated annotation yet
        old = formed.get(name)
        if old is None or (inode != inodes[name] and not _same(data, name, fname, old)):
            changed[name] = fname
    return changed


def _same(data: AnnotationDir, name: str, fname: str, old_image: Path) -> bool:
    old_label = old_image.parent.parent / "labels" / f"{name}.txt"
    image = data.images / fname
    try:
        if old_image.name != fname or os.path.getsize(old_image) != os.path.getsize(image):
            return False
        return (
            old_label.read_bytes() == (data.labels / f"{name}.txt").read_bytes()
            and old_image.read_bytes() == image.read_bytes()
        )
    except OSError:
        return False


def sample_by_video(tree: DataTree, changed: dict[str, str], per_video: int, total: int) -> Sample:
    """At most ``per_video`` frames of each video, evenly spaced in time, videos in turn up to
    ``total``; all of it decided by names and positions, so the same data gives the same
    sample."""
    positions = source_positions(tree.root)
    videos: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for name in changed:
        media, ticks = positions.get(name, (None, 0))
        videos[group_of(media) or f"\0{name}"].append((ticks, name))
    picks = [
        [name for _, name in spaced(sorted(frames), per_video)]
        for _, frames in sorted(videos.items())
    ]
    chosen: list[str] = []
    for turn in range(max((len(p) for p in picks), default=0)):
        chosen += [p[turn] for p in picks if turn < len(p)]
    chosen = chosen[:total]
    taken = set(chosen)
    used = sum(1 for p in picks if p and p[0] in taken)  # a video's first frame goes first
    return Sample([tree.data.images / changed[n] for n in chosen], len(changed), used)


def source_positions(root: Path) -> dict[str, tuple[str, int]]:
    """name -> (source media, position in ticks) of every annotation whose origin is known."""
    path = state_file(root)
    if not path.exists():
        return {}  # a tree written without the stream: every annotation is its own video
    with IngestState(path) as state:
        return state.positions()


def by_mode(per_class: list[dict]) -> dict[str, float]:
    """mAP50-95 per weather mode: the mean AP of the mode's classes that were present, as
    mAP is the mean over the classes present."""
    modes: dict[str, list[float]] = defaultdict(list)
    for row in per_class:
        modes[weather_mode(int(row["slot"]))].append(float(row["ap50_95"]))
    return {mode: round(fmean(aps), 4) for mode, aps in sorted(modes.items())}
