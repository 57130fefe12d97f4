"""A dataset's pictures: the boxes per class per split, and a sheet of each split's frames
picked by rule, their true boxes drawn."""

from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from azaion_assets.lib.dataset.dataset_sheet import dataset_pictures, spaced, split_sheet
from azaion_assets.lib.pictures.frames import TRUTH


def test_spaced_takes_the_first_the_last_and_evenly_between():
    items = [Path(str(i)) for i in range(10)]
    assert [p.name for p in spaced(items, 4)] == ["0", "3", "6", "9"]
    assert spaced(items, 20) == items and spaced(items, 0) == []
    assert [p.name for p in spaced(items, 1)] == ["5"]


def _split(root: Path, split: str, n: int) -> None:
    for kind in ("images", "labels"):
        (root / split / kind).mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(root / split / "images" / f"f{i}.jpg"), np.full((90, 160, 3), 80, np.uint8))
        (root / split / "labels" / f"f{i}.txt").write_text("1 0.5 0.5 0.5 0.5\n")


def test_a_split_sheet_shows_the_picked_frames_with_their_boxes(tmp_path: Path):
    _split(tmp_path, "train", 9)
    sheet = split_sheet(tmp_path, "train", 4, 80, ["Armor", "Truck"])
    assert sheet is not None and sheet.file == "sheet_train.jpg"
    image = sheet.picture.frame
    assert image is not None and image.shape[1] == 4 * 80  # four tiles in a row
    assert (np.abs(image.astype(int) - TRUTH).max(axis=2) <= 30).any()
    assert split_sheet(tmp_path, "test", 4, 80, []) is None  # no such split: no sheet


def test_the_dataset_shows_its_chart_then_a_sheet_per_split_with_frames(tmp_path: Path):
    _split(tmp_path, "train", 3)
    _split(tmp_path, "test", 1)
    boxes = {"train": Counter({1: 3}), "valid": Counter(), "test": Counter({1: 1})}
    shown = dataset_pictures(tmp_path, boxes, {0: "Armor", 1: "Truck"}, 2, 80)
    assert [s.file for s in shown] == ["boxes_by_class.png", "sheet_train.jpg", "sheet_test.jpg"]
