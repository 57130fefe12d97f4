"""Build Azaion stream messages: what ``azaion-assets publish``, the demo and the tests send.

Each message is ``(body, application_properties)``, exactly as the Azaion platform publishes it
(see docs/message-contract.md), so everything downstream is exercised as in production.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azaion_assets.dev.synthetic import Box, frame_source, samples
from azaion_assets.lib.stream.contract import pack
from azaion_assets.lib.stream.events import STATUS_PROPERTY, Role, Source, Status

Message = tuple[bytes, dict[str, Any]]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Author:
    role: Role = Role.VALIDATOR
    email: str = "publisher@azaion.local"


def annotation(
    name: str,
    image: bytes,
    extension: str,
    boxes: Iterable[Box],
    author: Author,
    status: Status = Status.CREATED,
    when: datetime | None = None,
    media: str | None = None,
    ticks: int = 0,
) -> Message:
    """A Created or Edited message: the positional msgpack array of the contract."""
    detections = json.dumps(
        [{"cls": c, "x": x, "y": y, "w": w, "h": h} for c, x, y, w, h in boxes],
        separators=(",", ":"),
    )
    body = pack(
        [
            when or datetime.now(UTC),
            name,
            media or f"{name}.mp4",
            ticks,
            extension,
            detections,
            image,
            int(author.role),
            author.email,
            int(Source.MANUAL),
            int(status),
        ]
    )
    return body, {STATUS_PROPERTY: int(status)}


def bulk(names: Iterable[str], status: Status, author: Author) -> Message:
    """A bulk Validated or Deleted message for ``names``."""
    if status not in (Status.VALIDATED, Status.DELETED):
        raise ValueError(f"bulk messages are Validated or Deleted, not {status.name}")
    body = pack([list(names), int(status), author.email, datetime.now(UTC)])
    return body, {STATUS_PROPERTY: int(status)}


def synthetic(
    count: int,
    author: Author,
    seed: int = 0,
    prefix: str = "synthetic",
    videos: int | None = None,
    **kwargs,
) -> Iterator[Message]:
    """``count`` rendered images with known boxes, as Created messages: frames of ``videos``
    videos, or by default each the only frame of its own video."""
    for i, sample in enumerate(samples(count, seed=seed, prefix=prefix, **kwargs)):
        media, ticks = frame_source(prefix, i, count, videos) if videos else (None, 0)
        yield annotation(
            sample.name, sample.image, ".jpg", sample.boxes, author, media=media, ticks=ticks
        )


def yolo_folder(folder: Path, author: Author, status: Status = Status.CREATED) -> Iterator[Message]:
    """Every image under ``folder`` (``images/`` beside ``labels/``, or side by side) with its
    YOLO label. An image without a label is sent with no boxes, as the platform would."""
    folder = Path(folder)
    images_dir = folder / "images" if (folder / "images").is_dir() else folder
    labels_dir = folder / "labels" if (folder / "labels").is_dir() else folder
    for image in sorted(images_dir.iterdir()):
        if image.suffix.lower() not in IMAGE_SUFFIXES or image.name.startswith("."):
            continue
        label = labels_dir / f"{image.stem}.txt"
        boxes = read_yolo_boxes(label) if label.is_file() else []
        yield annotation(
            image.stem, image.read_bytes(), image.suffix.lower(), boxes, author, status
        )


def read_yolo_boxes(label: Path) -> list[Box]:
    """Boxes of a YOLO label file as written; the receiving side validates them."""
    boxes: list[Box] = []
    for line in label.read_text("utf-8-sig").splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise ValueError(f"{label}: expected 5 fields per line, got {len(parts)}")
        cls, x, y, w, h = parts
        boxes.append((int(cls), float(x), float(y), float(w), float(h)))
    return boxes
