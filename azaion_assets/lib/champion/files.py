"""Publishing the champion: ``models/azaion.pt`` and ``models/azaion.onnx``, always as a pair.

The platform picks up both files, so they must come from the same partition: ``publish_pair``
writes them together under one lock (the ONNX file first, so ``azaion.pt``, which names the
champion, changes last). Each file has a sidecar record (``azaion.pt.json``) with its partition
and checksum; a record whose checksum does not match its file (a crash between the copy and the
record) is not believed (see ``held_partition``).

Two rules protect the champion, checked under the lock: a backfill of an older partition never
replaces a newer one, and a promotion decided against one champion is not applied if another
took its place meanwhile (an operator promoted by hand during the evaluation). An operator's
promotion passes ``force`` to bypass both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azaion_assets.lib.fsio.atomic import atomic_copy, atomic_write_text
from azaion_assets.lib.fsio.digest import sha256
from azaion_assets.lib.fsio.locks import file_lock

UNKNOWN = "unknown"  # a champion file without a believable record
NO_CHAMPION = "none"  # what ``expected`` says when the promotion was decided with no champion


@dataclass(frozen=True)
class Published:
    published: bool
    partition: str | None  # the partition the champion holds afterwards
    reason: str


def record_path(target: Path) -> Path:
    return target.with_name(target.name + ".json")


def read_record(target: Path) -> dict | None:
    path = record_path(target)
    return json.loads(path.read_text("utf-8")) if path.is_file() else None


@dataclass(frozen=True)
class Held:
    """A published file as it is: its sha256, and the partition its record vouches for."""

    partition: str  # ``UNKNOWN``: the record is missing or belongs to other bytes
    sha256: str


def held_file(target: Path) -> Held | None:
    """``target`` hashed once, with what its record says of those bytes; None if no file."""
    if not target.is_file():
        return None
    record = read_record(target)
    digest = sha256(target)
    if record is None or record.get("sha256") != digest:
        return Held(UNKNOWN, digest)
    return Held(str(record["partition"]), digest)


def held_partition(target: Path) -> str | None:
    """The partition ``target`` holds: None if there is no file, ``UNKNOWN`` if its record is
    missing or belongs to other bytes (an older deployment's file, or a torn publish)."""
    held = held_file(target)
    return held.partition if held is not None else None


def _refusal(held: str | None, partition: str, expected: str | None) -> str | None:
    if expected is not None and (held or NO_CHAMPION) != expected:
        return f"the champion changed to {held} after this model was judged against {expected}"
    if held not in (None, UNKNOWN) and held > partition:
        return f"the champion is from newer partition {held}"
    return None


def publish_lock(models: Path):
    """Held while the champion pair is written, or read as one (a release)."""
    return file_lock(models / ".publish.lock")


def publish_pair(
    files: list[tuple[Path, Path]],
    partition: str,
    extra: dict[str, Any] | None = None,
    expected: str | None = None,
    force: bool = False,
    cards: Callable[[], dict[Path, dict[str, Any]]] | None = None,
) -> Published:
    """Copy each ``(source, target)`` atomically with its record, the last target naming the
    champion. ``expected``: the partition the champion held when this promotion was decided;
    ``cards``: called under the lock, just before the copies, to check the sources (it may
    raise) and give more fields for a target's record (the ONNX's model card)."""
    champion = files[-1][1]
    champion.parent.mkdir(parents=True, exist_ok=True)
    with publish_lock(champion.parent):
        held = held_partition(champion)
        refusal = None if force else _refusal(held, partition, expected)
        if refusal is not None:
            return Published(False, held, f"not published: {refusal}")
        more = cards() if cards is not None else {}
        for source, target in files:
            atomic_copy(source, target)
            record = {
                **more.get(target, {}),
                "partition": partition,
                "source": str(source),
                "sha256": sha256(target),
                "published_at": datetime.now(UTC).isoformat(),
                **(extra or {}),
            }
            atomic_write_text(record_path(target), json.dumps(record, indent=2))
        return Published(True, partition, f"published {partition}")


def publish(
    source: Path,
    target: Path,
    partition: str,
    extra: dict[str, Any] | None = None,
    force: bool = False,
) -> Published:
    """One file, by the same rules (see ``publish_pair``)."""
    return publish_pair([(source, target)], partition, extra, force=force)
