"""Pictures as Markdown a metadata entry can carry, within a byte budget.

A year of materialisations lives in the instance (docs/housekeeping.md), so the pictures of one
materialisation have a budget: JPEG frames are encoded again smaller until the whole fits, and
what still does not fit is left out and counted, never silently cut mid-picture.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_QUALITIES = (85, 70, 55, 40)


@dataclass(frozen=True)
class Picture:
    """One picture for the page: a title, and either a frame (BGR, encoded here as JPEG, made
    smaller to fit) or an encoded PNG chart (kept as it is)."""

    title: str
    frame: np.ndarray | None = None
    png: bytes | None = None


@dataclass(frozen=True)
class Shown:
    """A picture for the page, the file name it is saved under beside the model, and the
    frame it shows (None for a chart or a sheet)."""

    file: str
    picture: Picture
    frame: str | None = None


def file_bytes(picture: Picture) -> bytes:
    """The picture as a file a person opens: a chart's PNG, a frame as a fine JPEG."""
    return picture.png if picture.png is not None else jpeg(_frame_of(picture), 90)


def _frame_of(picture: Picture) -> np.ndarray:
    if picture.frame is None:
        raise ValueError(f"{picture.title}: a picture needs a frame or a PNG")
    return picture.frame


@dataclass(frozen=True)
class Embedded:
    markdown: str
    bytes: int  # of the Markdown, data URIs included
    left_out: list[str]  # titles that did not fit the budget


def jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    import cv2  # heavy: not at the code location's load (test_definitions)

    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the frame could not be encoded as JPEG")
    return encoded.tobytes()


def png(image: np.ndarray) -> bytes:
    import cv2

    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("the image could not be encoded as PNG")
    return encoded.tobytes()


def _image_markdown(title: str, mime: str, data: bytes) -> str:
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return f"**{title}**\n\n![{title}]({uri})\n"


def _encoded(picture: Picture, quality: int) -> str:
    if picture.png is not None:
        return _image_markdown(picture.title, "image/png", picture.png)
    from azaion_assets.lib.pictures.frames import thumbnail

    assert picture.frame is not None
    frame = picture.frame
    if quality < _QUALITIES[0]:  # smaller as well as coarser, once quality alone is not enough
        frame = thumbnail(frame, max(64, frame.shape[1] * quality // _QUALITIES[0]))
    return _image_markdown(picture.title, "image/jpeg", jpeg(frame, quality))


def embed(pictures: Sequence[Picture], budget: int) -> Embedded:
    """The pictures in order as one Markdown text of at most ``budget`` bytes: frames are
    encoded at falling quality and size until all fit; then, from the last, pictures are left
    out until the rest do."""
    if any(p.frame is None and p.png is None for p in pictures):
        raise ValueError("a picture needs a frame or a PNG")
    encoded: dict[tuple[int, int], str] = {}  # (picture, quality): each encoded once

    def part(index: int, quality: int) -> str:
        if (index, quality) not in encoded:
            encoded[index, quality] = _encoded(pictures[index], quality)
        return encoded[index, quality]

    kept = list(pictures)
    while kept:
        for quality in _QUALITIES:
            parts = [part(i, quality) for i in range(len(kept))]
            text = "\n".join(parts)
            size = len(text.encode("utf-8"))
            if size <= budget:
                left = [p.title for p in pictures[len(kept) :]]
                return Embedded(text, size, left)
        kept.pop()
    return Embedded("", 0, [p.title for p in pictures])
