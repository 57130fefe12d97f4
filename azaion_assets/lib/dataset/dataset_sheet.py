"""What a formed dataset looks like: its boxes per class per split as a chart, and a few of each
split's frames with their boxes.

The frames of a split are chosen by rule, evenly spaced over its names in order, so the same
dataset always shows the same frames and a person can find them on disk.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from azaion_assets.lib.dataset.formed_dataset import split_images
from azaion_assets.lib.dataset.video_split import SPLITS
from azaion_assets.lib.labels.classes import slot_list
from azaion_assets.lib.pictures.embed import Picture, Shown

T = TypeVar("T")
SHEET_COLUMNS = 4
SHEET_FILES = "sheet_*.jpg"  # in report/ (a glob: an older dataset's sheets are removed)
SHEET_RULE = "frames of each split evenly spaced over its names in order"


def spaced(items: list[T], k: int) -> list[T]:
    """``k`` of ``items`` evenly spaced from the first to the last (all if there are fewer; the
    middle one if one): the sheets' frames, and the monitor's frames of a video."""
    if k <= 0:
        return []
    if len(items) <= k:
        return items
    if k == 1:
        return [items[len(items) // 2]]
    step = (len(items) - 1) / (k - 1)
    return [items[round(i * step)] for i in range(k)]


def boxes_chart(boxes: Mapping[str, Counter[int]], names: Mapping[int, str]) -> Shown:
    from azaion_assets.lib.pictures.charts import bar_chart

    slots = sorted(set().union(*(boxes[s].keys() for s in SPLITS if s in boxes)))
    counts = {s: {names.get(c, str(c)): boxes[s][c] for c in slots} for s in SPLITS if s in boxes}
    png = bar_chart(counts, "boxes per class per split", "boxes")
    return Shown("boxes_by_class.png", Picture("boxes per class per split", png=png))


def split_sheet(
    dataset_dir: Path, split: str, k: int, width: int, class_names: list[str]
) -> Shown | None:
    """``k`` frames of ``split`` with their true boxes in one contact sheet, each captioned
    with its name; None for an empty split."""
    from azaion_assets.lib.pictures.frames import (
        TRUTH,
        Layer,
        contact_sheet,
        drawn_frame,
        label_boxes,
    )

    tiles = []
    for image in spaced(split_images(dataset_dir, split), k):
        label = image.parent.parent / "labels" / f"{image.stem}.txt"
        drawn = drawn_frame(image, [Layer(label_boxes(label), TRUTH)], width, class_names)
        if drawn is not None:
            tiles.append((drawn, image.name))
    if not tiles:
        return None
    sheet = contact_sheet(tiles, min(SHEET_COLUMNS, len(tiles)), width)
    return Shown(f"sheet_{split}.jpg", Picture(f"{split}: {len(tiles)} frames", sheet))


def dataset_pictures(
    dataset_dir: Path,
    boxes: Mapping[str, Counter[int]],
    names: Mapping[int, str],
    per_split: int,
    width: int,
) -> list[Shown]:
    """The chart, then a sheet per split that has frames."""
    class_names = slot_list(names)
    sheets = [split_sheet(dataset_dir, s, per_split, width, class_names) for s in SPLITS]
    return [boxes_chart(boxes, names), *(s for s in sheets if s is not None)]
