"""Annotation classes in the Azaion ``classes.json`` format, and the 80 training slots.

Azaion annotates each object class in three weather modes. The detector sees them as separate
classes: slot ``Id`` (Norm), ``Id + 20`` (Wint) and ``Id + 40`` (Night). The remaining slots up to
80 are named ``Class-N`` so that the head keeps the same shape as new classes are added, and
weights stay transferable between datasets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

NUM_SLOTS = 80
MODE_OFFSETS = {"Norm": 0, "Wint": 20, "Night": 40}
MAX_BASE_ID = 20  # a base id must leave room for the +20 and +40 modes


class ClassesError(ValueError):
    """classes.json is malformed."""


@dataclass(frozen=True)
class AnnotationClass:
    id: int
    name: str
    short_name: str
    color: str


def default_classes_json() -> str:
    """The ``classes.json`` that ships with the package."""
    return resources.files("azaion_assets").joinpath("data/classes.json").read_text("utf-8")


def parse_classes(text: str, source: str = "classes.json") -> list[AnnotationClass]:
    """Parse and validate Azaion ``classes.json`` content."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClassesError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(raw, list):
        raise ClassesError(f"{source}: must be a JSON list of classes")
    classes, seen = [], set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not {"Id", "Name"} <= item.keys():
            raise ClassesError(f"{source}: entry {i} needs at least Id and Name")
        cid = item["Id"]
        if not isinstance(cid, int) or isinstance(cid, bool) or not 0 <= cid < MAX_BASE_ID:
            raise ClassesError(f"{source}: entry {i} Id must be an integer in [0, {MAX_BASE_ID})")
        if cid in seen:
            raise ClassesError(f"{source}: duplicate Id {cid}")
        seen.add(cid)
        classes.append(
            AnnotationClass(
                id=cid,
                name=str(item["Name"]),
                short_name=str(item.get("ShortName", item["Name"])),
                color=str(item.get("Color", "#FFFFFF")),
            )
        )
    return sorted(classes, key=lambda c: c.id)


def load_classes(path: Path) -> list[AnnotationClass]:
    return parse_classes(Path(path).read_text("utf-8"), source=str(path))


def slot_names(classes: list[AnnotationClass]) -> dict[int, str]:
    """All 80 training slot names: the classes in each weather mode, then ``Class-N``."""
    names = {slot: f"Class-{slot}" for slot in range(NUM_SLOTS)}
    for cls in classes:
        for mode, offset in MODE_OFFSETS.items():
            names[cls.id + offset] = cls.name if mode == "Norm" else f"{cls.name}({mode})"
    return names


def slot_list(names: Mapping[int, str]) -> list[str]:
    """``names`` indexed by slot, for drawing (a slot without a name shows its number)."""
    return [names.get(i, str(i)) for i in range(max(names, default=-1) + 1)]
