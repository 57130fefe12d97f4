"""Publishing a model file (``models/azaion.pt``, ``models/azaion.onnx``) for the platform.

Backfills and re-runs materialise old partitions too; none of them may replace a model from a
newer partition. Each published file has a sidecar record (``azaion.pt.json``) naming its
partition and checksum, and publishing goes through one lock, so concurrent runs cannot
interleave. Which model deserves publishing (champion/challenger by score) is decided in
``champion``; an operator's manual promotion passes ``force`` to override the partition rule.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azaion_assets.core.atomic import atomic_copy, atomic_write_text


@dataclass(frozen=True)
class Published:
    published: bool
    partition: str | None  # the partition the target holds afterwards
    reason: str


def record_path(target: Path) -> Path:
    return target.with_name(target.name + ".json")


def read_record(target: Path) -> dict | None:
    path = record_path(target)
    return json.loads(path.read_text("utf-8")) if path.is_file() else None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def publish(
    source: Path,
    target: Path,
    partition: str,
    extra: dict[str, Any] | None = None,
    force: bool = False,
) -> Published:
    """Copy ``source`` over ``target`` atomically unless ``target`` is from a newer partition.

    ``extra`` goes into the sidecar (scores, who promoted it); ``force`` publishes regardless of
    partition order, for an operator's explicit promotion.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".publish.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = read_record(target)
        held = current.get("partition") if current else None
        if held is not None and held > partition and not force:
            return Published(False, held, f"{target.name} holds newer partition {held}")
        atomic_copy(source, target)
        record = {
            "partition": partition,
            "source": str(source),
            "sha256": sha256(target),
            "published_at": datetime.now(UTC).isoformat(),
            **(extra or {}),
        }
        atomic_write_text(record_path(target), json.dumps(record, indent=2))
        return Published(True, partition, f"published {partition}")
