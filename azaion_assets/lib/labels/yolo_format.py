"""YOLO label parsing and validation.

A label file has one box a line: ``class x_center y_center width height``, coordinates normalised
to [0, 1]. A label that breaks any rule is rejected as a whole with a reason a person can act on;
the dataset stage moves it aside instead of training on it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from azaion_assets.lib.labels.classes import NUM_SLOTS

DECIMALS = 6  # what format_label writes, and so what check_box judges
EPS = 1e-6  # tolerance for float noise at the image edges
_LO, _HI = -EPS, 1 + EPS


class LabelError(ValueError):
    """A label file breaks the YOLO rules; the message is the reason."""


def parse_label(text: str, num_slots: int = NUM_SLOTS) -> list[int]:
    """Validate a whole label file and return the class id of each box.

    An empty file is a valid background image (no boxes).
    """
    classes: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise LabelError(f"line {lineno}: expected 5 fields, got {len(fields)}")
        try:
            cls = int(fields[0])
        except ValueError:
            raise LabelError(f"line {lineno}: class id {fields[0]!r} is not an integer") from None
        try:
            x, y, w, h = float(fields[1]), float(fields[2]), float(fields[3]), float(fields[4])
        except ValueError:
            raise LabelError(f"line {lineno}: coordinates must be numbers") from None
        check_box(lineno, cls, x, y, w, h, num_slots)
        classes.append(cls)
    return classes


def check_box(
    lineno: int, cls: int, x: float, y: float, w: float, h: float, num_slots: int = NUM_SLOTS
) -> None:
    """The one rule for a box, wherever it comes from (a label line, a stream detection).

    A box is judged as ``format_label`` writes it, rounded to ``DECIMALS``: the decoder then
    never accepts a box whose written line this same check rejects at forming time (a width of
    4e-7 is written 0.000000). One chained test on the raw values is the hot path: it passes
    only boxes that pass after rounding too (rounding moves an edge by under 7.5e-7, inside the
    1e-6 tolerance); anything else, NaN and inf included, is rounded and judged exactly.
    """
    if not 0 <= cls < num_slots:
        shown = cls if cls.bit_length() <= 64 else f"of {cls.bit_length()} bits"
        raise LabelError(f"line {lineno}: class id {shown} outside 0..{num_slots - 1}")
    hw, hh = w / 2, h / 2
    if not (w > EPS and h > EPS and x - hw >= 0 and x + hw <= 1 and y - hh >= 0 and y + hh <= 1):
        _check_written(lineno, x, y, w, h)


def _check_written(lineno: int, x: float, y: float, w: float, h: float) -> None:
    """The rule itself, on the values as written; raises the precise reason."""
    values = (("x", x), ("y", y), ("w", w), ("h", h))
    rx, ry, rw, rh = (round(v, DECIMALS) for _, v in values)  # as f"{v:.6f}" reads back
    if _fits(rx, ry, rw, rh):
        return
    for (label, value), written in zip(values, (rx, ry, rw, rh), strict=True):
        if not math.isfinite(written) or not _LO <= written <= _HI:
            raise LabelError(f"line {lineno}: {label}={value} outside [0, 1]")
    how = ""
    if _fits(x, y, w, h):  # only the rounding breaks it: say so, with the values written
        shown = ", ".join(f"{label}={value:.{DECIMALS}f}" for label, value in values)
        how = f" as written with {DECIMALS} decimals ({shown})"
    if rw <= 0 or rh <= 0:
        raise LabelError(f"line {lineno}: box has zero or negative size{how}")
    raise LabelError(f"line {lineno}: box extends outside the image{how}")


def _fits(x: float, y: float, w: float, h: float) -> bool:
    hw, hh = w / 2, h / 2
    return w > 0 and h > 0 and x - hw >= _LO and x + hw <= _HI and y - hh >= _LO and y + hh <= _HI


def format_label(boxes: list[tuple[int, float, float, float, float]]) -> str:
    """Render boxes as YOLO label text with ``DECIMALS`` (6) decimals."""
    return "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in boxes)


def label_stems(folder: Path) -> set[str]:
    """The names (stems) that have a ``.txt`` label in ``folder``, skipping hidden files
    (in-flight temps); none if the folder is missing."""
    if not folder.is_dir():
        return set()
    return {f[:-4] for f in os.listdir(folder) if f.endswith(".txt") and not f.startswith(".")}
