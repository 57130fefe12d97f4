"""A formed dataset on disk: ``manifest.json``, ``data.yaml`` and the images of each split.

Forming writes these files; training, the dataset check and evaluation read them back, so the
layout is defined once, apart from how a dataset is formed.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from azaion_assets.lib.dataset.split_stats import SourceStats
from azaion_assets.lib.fsio.atomic import atomic_write_text

MANIFEST = "manifest.json"
DATA_YAML = "data.yaml"


@dataclass
class DatasetReport:
    """What a formed dataset holds; also written to ``manifest.json`` inside it."""

    partition: str
    path: Path
    images: dict[str, int]
    boxes: dict[str, Counter[int]]
    corrupted: dict[str, str]
    unpaired: dict[str, str]
    data_version: str
    source_names: int
    sources: SourceStats | None = None  # videos and frames per split
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_json(self) -> dict:
        return {
            "partition": self.partition,
            "images": self.images,
            "boxes": {s: {str(k): v for k, v in sorted(c.items())} for s, c in self.boxes.items()},
            "corrupted": self.corrupted,
            "unpaired": self.unpaired,
            "data_version": self.data_version,
            "source_names": self.source_names,
            "sources": self.sources.to_json() if self.sources else None,
            "created_at": self.created_at,
        }


def read_manifest(dataset_dir: Path) -> dict:
    """The manifest of a formed dataset, or a clear error if it was never formed."""
    path = Path(dataset_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no formed dataset at {dataset_dir} (missing {MANIFEST})")
    return json.loads(path.read_text("utf-8"))


def split_images(dataset_dir: Path, split: str) -> list[Path]:
    """A formed dataset's images of one split, sorted (none if the split folder is missing)."""
    folder = Path(dataset_dir) / split / "images"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def write_data_yaml(staging: Path, final: Path, slot_names: dict[int, str]) -> None:
    """``data.yaml`` as Ultralytics reads it, pointing at where the dataset will be."""
    data = {
        "path": str(final.resolve()),
        "train": "train/images",
        "val": "valid/images",
        "test": "test/images",
        "nc": len(slot_names),
        "names": dict(sorted(slot_names.items())),
    }
    atomic_write_text(staging / DATA_YAML, yaml.safe_dump(data, sort_keys=False))
