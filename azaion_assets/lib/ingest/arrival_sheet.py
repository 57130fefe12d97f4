"""What a day's arrivals look like: its newest annotations with their boxes, and the images of
its quarantined messages that can be decoded, each with its reason.

Both come from records the ingest already keeps: the names each segment brought into data/
(``IngestState.into_data_between``) and the quarantine's ``<offset>.json`` beside the raw body.
A quarantined body is hostile until shown otherwise, so it is read only up to
``MAX_SHOWN_BODY`` bytes, a message refused for its image is not decoded again, at most
``TRIES_PER_PICTURE`` messages are looked at for each picture, and an image is drawn only once
the ingest's own door (``image_door.check_image``, with its image judge) accepts it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.ingest.day_totals import day_bounds
from azaion_assets.lib.ingest.ingest_state import IngestState
from azaion_assets.lib.ingest.planning import quarantine_dir
from azaion_assets.lib.pictures.embed import Picture, Shown
from azaion_assets.lib.stream.image_door import check_image
from azaion_assets.lib.stream.image_judge import ImageJudge, JudgeError
from azaion_assets.lib.stream.limits import DEFAULT_LIMITS

MAX_SHOWN_BODY = 8 << 20  # a 4K JPEG is 1-3 MB; a bigger body is not opened to be shown
TRIES_PER_PICTURE = 4  # quarantined messages looked at, at most, for each one shown
# Reasons that say the image itself was refused: it is not decoded again to be shown.
_IMAGE_REASONS = ("image", "unsupported image", "decoder error")
SHEET_COLUMNS = 4
_IMAGE_FIELD, _BOXES_FIELD = 6, 5  # positions in the annotation array (message contract)


@dataclass(frozen=True)
class Quarantined:
    offset: int
    name: str | None
    reason: str
    record: Path  # the ``.json``; the body is beside it as ``.bin``


def day_quarantine(tree: DataTree, segments: list[str]) -> list[Quarantined]:
    """The day's quarantined messages (those of ``segments``), newest first."""
    wanted, found = set(segments), []
    folder = quarantine_dir(tree)
    for record in folder.glob("*.json") if folder.is_dir() else ():
        try:
            data = json.loads(record.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("partition") in wanted:
            found.append(Quarantined(int(data["offset"]), data.get("name"), data["reason"], record))
    return sorted(found, key=lambda q: -q.offset)


def quarantined_image(
    item: Quarantined, judge: ImageJudge | None = None
) -> tuple[Any, list] | None:
    """The decoded image (BGR) of a quarantined annotation and the boxes it named (what parses
    of them), or None when there is no image to show safely. ``judge``: the ingest's image
    judge, so that an image that is not a plain JPEG is judged within its budget, as at the
    door (without one, in this process)."""
    import cv2
    import msgpack
    import numpy as np

    body_path = item.record.with_suffix(".bin")
    if item.reason.startswith(_IMAGE_REASONS) or not body_path.is_file():
        return None  # refused for its image: not decoded again to be shown
    if body_path.stat().st_size > MAX_SHOWN_BODY:
        return None
    try:
        fields = msgpack.unpackb(body_path.read_bytes(), raw=False, strict_map_key=False)
        image = fields[_IMAGE_FIELD]
        check_image(image, DEFAULT_LIMITS, judge)
    except JudgeError:
        raise
    except Exception:  # Reject, and the many types msgpack and a hostile body raise
        return None
    decoded = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        return None
    return decoded, _boxes(fields[_BOXES_FIELD] if len(fields) > _BOXES_FIELD else None)


def _boxes(value: Any) -> list[tuple[int, float, float, float, float]]:
    """The boxes a quarantined message named, leniently: it is shown, not trusted."""
    try:
        items = json.loads(value) if isinstance(value, (str, bytes)) else value
        return [
            (int(b["cls"]), float(b["x"]), float(b["y"]), float(b["w"]), float(b["h"]))
            for b in items[:1000]
        ]
    except (TypeError, ValueError, KeyError, IndexError):
        return []


def arrival_pictures(
    tree: DataTree,
    state: IngestState,
    day: date,
    segments: list[str],
    count: int,
    width: int,
    class_names: list[str],
) -> list[Shown]:
    """A sheet of the day's ``count`` newest annotations, then each of its ``count`` newest
    quarantined messages whose image can be shown, titled with its reason."""
    from azaion_assets.lib.pictures.frames import (
        TRUTH,
        Layer,
        contact_sheet,
        draw,
        drawn_frame,
        label_boxes,
        thumbnail,
    )

    tiles = []
    for name, ext in state.into_data_between(*day_bounds(day), count):
        image = tree.data.images / f"{name}{ext}"
        boxes = label_boxes(tree.data.labels / f"{name}.txt")
        drawn = drawn_frame(image, [Layer(boxes, TRUTH)], width, class_names)
        if drawn is not None:  # edited or deleted since: its file is elsewhere now
            tiles.append((drawn, name))
    shown = []
    if tiles:
        sheet = contact_sheet(tiles, min(SHEET_COLUMNS, len(tiles)), width)
        title = f"the newest {len(tiles)} annotations of {day.isoformat()}"
        shown.append(Shown("arrivals.jpg", Picture(title, sheet)))
    quarantined = 0
    with ImageJudge(DEFAULT_LIMITS.image_seconds, DEFAULT_LIMITS.image_memory) as judge:
        for item in day_quarantine(tree, segments)[: count * TRIES_PER_PICTURE]:
            if quarantined == count:
                break
            found = quarantined_image(item, judge)
            if found is None:
                continue
            image, boxes = found
            drawn = draw(thumbnail(image, width), [Layer(boxes, TRUTH)], class_names)
            title = f"quarantined, offset {item.offset} ({item.name or 'no name'}): {item.reason}"
            shown.append(Shown(f"quarantined_{item.offset}.jpg", Picture(title, drawn)))
            quarantined += 1
    return shown
