"""Each frame's errors as the edge shows them, and which frames a person should look at.

mAP integrates over every score; a person looking at a frame sees what the edge draws: the boxes
scoring above the export's score threshold (the model card's rule: strictly greater). A frame's
errors are its true boxes no such box matched (missed) plus the boxes that matched none (false).
A box matches the unclaimed true box of its class with the highest IoU, at least ``MATCH_IOU``,
best score first (COCO's greedy matching), so a box of the wrong class is both a false box and
a miss.

Errors are whole numbers and tie often (a weak model shows nothing on most frames), so each
frame also carries its doubt: for each true box, 1 minus the best score any box of its class
gives it at IoU ``MATCH_IOU``, whatever the threshold, summed; how far the model was from
finding what it missed.

The galleries follow stated rules (``RULES``), so the page and its test agree on the frames:
where two models differ most, and where one model does worst.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MATCH_IOU = 0.5
RULES = {
    "differ_most": (
        "the test frames with the largest difference in errors (missed + false boxes at the "
        "edge's score threshold, IoU {iou}) between challenger and champion, then in doubt "
        "(1 - the best score on each true box, summed); frames where both agree are left out; "
        "ties: more errors in all, then by name"
    ),
    "worst": (
        "the frames with the most errors (missed + false boxes at the edge's score threshold, "
        "IoU {iou}), then the most doubt (1 - the best score on each true box, summed); frames "
        "without either are left out; ties: by name"
    ),
}


@dataclass(frozen=True)
class Frame:
    """One scored frame: its true boxes (class, then x1 y1 x2 y2 in pixels) and the boxes a
    model shows on it (x1 y1 x2 y2 score class), with its errors."""

    image: Path
    width: int
    height: int
    truth: np.ndarray  # (n, 5)
    shown: np.ndarray  # (m, 6), score > the threshold, best first
    missed: int
    false: int
    doubt: float = 0.0

    @property
    def errors(self) -> int:
        return self.missed + self.false

    def yolo(self, which: str) -> list[tuple[int, float, float, float, float]]:
        """``truth`` or ``shown`` as YOLO boxes (class, cx, cy, w, h normalised), to draw."""
        rows = self.truth if which == "truth" else self.shown
        out = []
        for row in rows:
            cls, (x1, y1, x2, y2) = (row[0], row[1:5]) if which == "truth" else (row[5], row[:4])
            out.append(
                (
                    int(cls),
                    (x1 + x2) / 2 / self.width,
                    (y1 + y2) / 2 / self.height,
                    (x2 - x1) / self.width,
                    (y2 - y1) / self.height,
                )
            )
        return out


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each box of ``a`` (n, 4) with each of ``b`` (m, 4), x1 y1 x2 y2."""
    a, b = np.asarray(a, dtype=np.float64)[:, None, :4], np.asarray(b, dtype=np.float64)[None]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-12)


def frame(
    image: Path,
    width: int,
    height: int,
    classes: np.ndarray,
    targets: np.ndarray,
    rows: np.ndarray,
    threshold: float,
    iou: float = MATCH_IOU,
) -> Frame:
    """The frame's errors with ``rows`` (x1 y1 x2 y2 score class, any order) shown at
    ``threshold``, against true ``classes`` and ``targets`` (x1 y1 x2 y2)."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    shown = rows[rows[:, 4] > threshold]
    shown = shown[np.argsort(-shown[:, 4], kind="stable")]
    truth = np.column_stack([np.asarray(classes, dtype=np.float64), targets]).reshape(-1, 5)
    claimed = np.zeros(len(truth), dtype=bool)
    matched = 0
    if len(truth) and len(shown):
        overlap = iou_matrix(shown[:, :4], truth[:, 1:])
        same = shown[:, 5:6] == truth[None, :, 0]
        for i in range(len(shown)):
            candidates = np.where(same[i] & ~claimed & (overlap[i] >= iou), overlap[i], -1.0)
            best = int(np.argmax(candidates))
            if candidates[best] >= 0:
                claimed[best] = True
                matched += 1
    missed, false = len(truth) - matched, len(shown) - matched
    return Frame(image, width, height, truth, shown, missed, false, _doubt(truth, rows, iou))


def _doubt(truth: np.ndarray, rows: np.ndarray, iou: float) -> float:
    """Sum over the true boxes of 1 - the best score of a box of its class over it."""
    if not len(truth):
        return 0.0
    if not len(rows):
        return float(len(truth))
    over = (iou_matrix(truth[:, 1:], rows[:, :4]) >= iou) & (truth[:, :1] == rows[None, :, 5])
    best = np.where(over, rows[None, :, 4], 0.0).max(axis=1)
    return round(float(np.sum(1.0 - best)), 4)


def differ_most(a: Sequence[Frame], b: Sequence[Frame], k: int) -> list[tuple[Frame, Frame]]:
    """Up to ``k`` pairs of the same frame scored by two models, where their errors differ
    most (``RULES["differ_most"]``); frames where they agree in both are left out."""
    other = {f.image.name: f for f in b}
    pairs = [(f, other[f.image.name]) for f in a if f.image.name in other]
    pairs = [p for p in pairs if (p[0].errors, p[0].doubt) != (p[1].errors, p[1].doubt)]

    def order(pair: tuple[Frame, Frame]) -> tuple[int, float, int, str]:
        x, y = pair
        errors, doubt = abs(x.errors - y.errors), abs(x.doubt - y.doubt)
        return -errors, -doubt, -(x.errors + y.errors), x.image.name

    pairs.sort(key=order)
    return pairs[:k]


def worst(frames: Sequence[Frame], k: int) -> list[Frame]:
    """Up to ``k`` frames with the most errors (``RULES["worst"]``); frames without any are
    left out."""
    bad = (f for f in frames if f.errors or f.doubt)
    return sorted(bad, key=lambda f: (-f.errors, -f.doubt, f.image.name))[:k]


def rule(name: str) -> str:
    return RULES[name].format(iou=MATCH_IOU)
