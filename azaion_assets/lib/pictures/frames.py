"""Frames with their boxes drawn, thumbnails and contact sheets (OpenCV, BGR arrays).

What an engineer looks at before trusting a detector: the true boxes and a model's boxes on the
same frame, in colours that say which is which, the class named on each. Boxes come as YOLO
labels have them (class, centre x, centre y, width, height, normalised to the frame), so a box
lands on the pixels the label names whatever size the frame is shown at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np

YoloBox = tuple[int, float, float, float, float]  # class, cx, cy, w, h (normalised)

# Distinct at a glance, and for the commonest colour blindness (BGR).
TRUTH = (80, 200, 80)  # green: what the annotator drew
CHALLENGER = (255, 140, 0)  # blue: the model under judgement
CHAMPION = (40, 40, 230)  # red: the model in production
_BACKGROUND = (32, 32, 32)


@dataclass(frozen=True)
class Layer:
    """One set of boxes to draw: whose they are, and in which colour."""

    boxes: Sequence[YoloBox]
    color: tuple[int, int, int]
    dashed: bool = False  # the truth solid, predictions dashed where they overlap it


def label_boxes(path: Path) -> list[YoloBox]:
    """The boxes of a YOLO label file, to draw; no file, or a line that is not a box, draws
    nothing (validation is the label parser's job, not the picture's)."""
    try:
        lines = path.read_text("utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    boxes: list[YoloBox] = []
    for line in lines:
        parts = line.split()
        try:
            cls, cx, cy, w, h = int(parts[0]), *map(float, parts[1:5])
        except (ValueError, IndexError):
            continue
        boxes.append((cls, cx, cy, w, h))
    return boxes


def drawn_frame(image_path: Path, layers: Sequence[Layer], width: int, names: Sequence[str]):
    """The image at ``image_path`` as a thumbnail ``width`` wide with ``layers`` drawn on it,
    or None if it cannot be read."""
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    return None if image is None else draw(thumbnail(image, width), layers, names)


def box_pixels(box: YoloBox, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` as pixel corners (x1, y1, x2, y2) on a ``width`` x ``height`` frame, inside it."""
    _, cx, cy, w, h = box
    x1, x2 = (cx - w / 2) * width, (cx + w / 2) * width
    y1, y2 = (cy - h / 2) * height, (cy + h / 2) * height

    def clamp(v: float, most: int) -> int:
        return int(min(max(round(v), 0), most - 1))

    return clamp(x1, width), clamp(y1, height), clamp(x2, width), clamp(y2, height)


def draw(image: np.ndarray, layers: Sequence[Layer], names: Sequence[str] = ()) -> np.ndarray:
    """A copy of ``image`` with each layer's boxes, the class name above each box."""
    out = image.copy()
    height, width = out.shape[:2]
    thickness = max(1, round(min(width, height) / 160))
    scale = max(0.35, min(width, height) / 640)
    for layer in layers:
        for box in layer.boxes:
            x1, y1, x2, y2 = box_pixels(box, width, height)
            if layer.dashed:
                _dashed_rectangle(out, (x1, y1), (x2, y2), layer.color, thickness)
            else:
                cv2.rectangle(out, (x1, y1), (x2, y2), layer.color, thickness)
            cls = int(box[0])
            name = names[cls] if 0 <= cls < len(names) and names[cls] else str(cls)
            _caption(out, name, (x1, y1), layer.color, scale)
    return out


def _dashed_rectangle(image: np.ndarray, p1, p2, color, thickness: int, dash: int = 6) -> None:
    (x1, y1), (x2, y2) = p1, p2
    corners = [(x1, y1), (x2, y1), (x2, y2), (x1, y2), (x1, y1)]
    for (ax, ay), (bx, by) in pairwise(corners):
        length = max(abs(bx - ax), abs(by - ay), 1)
        for start in range(0, length, 2 * dash):
            t0, t1 = start / length, min(start + dash, length) / length
            a = (round(ax + (bx - ax) * t0), round(ay + (by - ay) * t0))
            b = (round(ax + (bx - ax) * t1), round(ay + (by - ay) * t1))
            cv2.line(image, a, b, color, thickness)


def _caption(image: np.ndarray, text: str, corner, color, scale: float) -> None:
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = corner
    top = y - h - base - 2 if y - h - base - 2 >= 0 else y  # inside the box at the top edge
    cv2.rectangle(image, (x, top), (x + w + 2, top + h + base + 2), color, cv2.FILLED)
    cv2.putText(image, text, (x + 1, top + h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                1, cv2.LINE_AA)  # fmt: skip


def thumbnail(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` scaled to ``width`` pixels wide, its aspect kept (never enlarged)."""
    height, current = image.shape[:2]
    if current <= width:
        return image
    size = (width, max(1, round(height * width / current)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def contact_sheet(
    tiles: Sequence[tuple[np.ndarray, str]], columns: int, tile_width: int
) -> np.ndarray:
    """Tiles in rows of ``columns``, each a thumbnail ``tile_width`` wide with its caption
    under it; one image."""
    if not tiles:
        raise ValueError("a contact sheet needs at least one tile")
    thumbs = [(thumbnail(image, tile_width), caption) for image, caption in tiles]
    caption_h = 18
    cell_h = max(t.shape[0] for t, _ in thumbs) + caption_h
    rows = -(-len(thumbs) // columns)
    sheet = np.full((rows * cell_h, columns * tile_width, 3), _BACKGROUND, dtype=np.uint8)
    for i, (thumb, caption) in enumerate(thumbs):
        top, left = (i // columns) * cell_h, (i % columns) * tile_width
        h, w = thumb.shape[:2]
        sheet[top : top + h, left : left + w] = thumb if thumb.ndim == 3 else thumb[..., None]
        cv2.putText(sheet, caption[:40], (left + 3, top + cell_h - 5), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (230, 230, 230), 1, cv2.LINE_AA)  # fmt: skip
    return sheet
