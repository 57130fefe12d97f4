"""Plan a group of annotation events: where each name's files go, as file work to commit.

Kept apart from applying (``apply_events.py``: grouping, locking, committing) because this is
the routing itself, and touches no file: a name's place comes from replaying its whole event
log (``ingest_state.replay``), and every other copy of the name in the tree (another place,
another image extension: left by a crash) is planned for removal.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.fsio.group_commit import FileChanges
from azaion_assets.lib.ingest.ingest_state import Kind, NameState, Origin, Place, replay
from azaion_assets.lib.ingest.name_gate import candidate, names_of
from azaion_assets.lib.ingest.summary import SAMPLE, IngestSummary
from azaion_assets.lib.stream.contract import encode_annotation, encode_bulk
from azaion_assets.lib.stream.events import (
    IMAGE_FORMATS,
    AnnotationEvent,
    BulkEvent,
    Decoded,
    Rejected,
    Status,
)

Group = list[tuple[int, bytes, Mapping[Any, Any], Decoded]]  # offset, raw body, properties
_EXTENSIONS = tuple(sorted(set(IMAGE_FORMATS.values())))


def quarantine_dir(tree: DataTree) -> Path:
    return tree.corrupted.root / "stream"


@dataclass
class Plan(FileChanges):
    """The file work of one group, and the names' new logs to commit after it."""

    states: dict[str, NameState] = field(default_factory=dict)


class Planner:
    """Plans groups of one partition's events into ``Plan``s, counting what they do."""

    def __init__(self, tree: DataTree, partition: str, summary: IngestSummary) -> None:
        self.tree, self.partition, self._summary = tree, partition, summary
        places = {Place.DATA: tree.data, Place.SEED: tree.seed, Place.DELETED: tree.deleted}
        self._dirs = {
            p: {"images": str(a.images), "labels": str(a.labels)} for p, a in places.items()
        }

    def folders(self) -> list[Path]:
        """Every folder a plan may write into."""
        folders = [Path(d) for kinds in self._dirs.values() for d in kinds.values()]
        return [*folders, quarantine_dir(self.tree)]

    def plan(self, group: Group, states: Mapping[str, NameState]) -> Plan:
        """The plan of ``group``, given the committed logs of its names."""
        plan = Plan()
        for offset, body, properties, decoded in group:
            event = decoded.event
            if isinstance(event, Rejected):
                self._plan_quarantine(plan, offset, body, properties, event)
            elif isinstance(event, AnnotationEvent):
                self._plan_content(plan, offset, event, states[event.name])
            else:
                for name in dict.fromkeys(event.names):
                    self._plan_bulk(plan, offset, event, name, states[name])
        return plan

    def _plan_content(self, plan: Plan, offset: int, event: AnnotationEvent, st: NameState) -> None:
        if st.has(offset):
            self._summary.already_applied += 1
            return
        kind = Kind.CONTENT_VALIDATED if event.by_validator else Kind.CONTENT_SEED
        new = st.with_event(offset, kind)
        placed = replay(new.log)
        assert placed.place is not None
        before = replay(st.log)
        was_in_data = before.place is Place.DATA
        changed = False
        self._summary.applied += 1
        # A Validate/Delete applied before this (earlier) Created was counted as unknown by its
        # own partition; now it has an annotation to act on.
        self._summary.unknown_resolved += len(before.unknown_at - placed.unknown_at)
        if placed.content_offset == offset:  # the newest content of this name: write it
            new.ext = event.image_extension
            new.origin = Origin(
                event.original_media_name,
                event.time_ticks,
                int(event.created_role),
                event.created_date.isoformat(),
            )
            dirs = self._dirs[placed.place]
            image = f"{dirs['images']}/{event.name}{new.ext}"
            label = f"{dirs['labels']}/{event.name}.txt"
            text = event.label_text().encode()
            plan.writes += [(image, event.image), (label, text)]
            changed = not (was_in_data and self._holds(event.name, st.ext, event.image, text))
            self._summary.unchanged += not changed
            if st.log:  # else no file of this name was ever committed (see ``_copies``)
                plan.removals += [p for p in self._copies(event.name) if p not in (image, label)]
            self._summary.written[placed.place.value] += 1
        else:  # an older edit arriving late: it cannot win, only the placement may change
            self._relocate(plan, event.name, new.ext, placed.place)
        self._summary.placed(event.name, was_in_data, placed.place is Place.DATA, changed)
        plan.states[event.name] = new

    def _holds(self, name: str, ext: str | None, image: bytes, label: bytes) -> bool:
        """data/ holds exactly this content for ``name`` already (a re-sent message)."""
        dirs = self._dirs[Place.DATA]
        try:
            with open(f"{dirs['labels']}/{name}.txt", "rb") as f:
                if f.read() != label:
                    return False
            path = f"{dirs['images']}/{name}{ext}"
            if ext is None or os.path.getsize(path) != len(image):
                return False
            with open(path, "rb") as f:
                return f.read() == image
        except OSError:
            return False

    def _plan_bulk(
        self, plan: Plan, offset: int, event: BulkEvent, name: str, st: NameState
    ) -> None:
        if st.has(offset):
            self._summary.already_applied += 1
            return
        kind = Kind.VALIDATE if event.status is Status.VALIDATED else Kind.DELETE
        new = st.with_event(offset, kind)
        placed = replay(new.log)
        self._summary.applied += 1
        if offset in placed.unknown_at:
            self._summary.unknown_names += 1
            if len(self._summary.unknown_sample) < SAMPLE:
                self._summary.unknown_sample.append(f"{event.status.name.title()} {name}")
        if placed.place is not None:
            moved = self._relocate(plan, name, new.ext, placed.place)
            if moved:
                self._summary.moved[f"to {placed.place.value}"] += 1
        was_in_data = replay(st.log).place is Place.DATA
        self._summary.placed(name, was_in_data, placed.place is Place.DATA, changed=False)
        plan.states[name] = new

    def _relocate(self, plan: Plan, name: str, ext: str | None, place: Place) -> bool:
        """Plan moving a name's files to ``place``; True if anything moves. Every other file
        of the name (another place, another image extension) is a stale copy left by a crash,
        and is removed."""
        moved = False
        wanted = [("labels", f"{name}.txt")]
        if ext is not None:
            wanted.append(("images", f"{name}{ext}"))
        keep = set()
        for kind, fname in wanted:
            target = f"{self._dirs[place][kind]}/{fname}"
            keep.add(target)
            others = [f"{d[kind]}/{fname}" for p, d in self._dirs.items() if p is not place]
            present = [p for p in others if os.path.lexists(p)]
            if not os.path.lexists(target) and present:
                plan.moves.append((present.pop(0), target))
                moved = True
        plan.removals += [p for p in self._copies(name) if p not in keep]  # after the moves
        return moved

    def _copies(self, name: str) -> list[str]:
        """Every path a file of ``name`` may have in the tree (all places, all image extensions).

        Not checked here: ``group_commit.commit`` removes whichever exist after the renames (a
        stale copy must not outlive the commit, and a check is one of 16 lookups per written
        name).

        Skipped for a name with no committed event (most names in a backlog: 16 lookups that
        find nothing, a sixth of the file work). Its files, if any, were put there by a group
        that crashed before its commit; that group is applied again, finds this name's log, and
        removes them then.
        """
        found = []
        for dirs in self._dirs.values():
            found += [f"{dirs['images']}/{name}{x}" for x in _EXTENSIONS]
            found.append(f"{dirs['labels']}/{name}.txt")
        return found

    def _plan_quarantine(
        self,
        plan: Plan,
        offset: int,
        body: bytes,
        properties: Mapping[Any, Any],
        event: Rejected,
    ) -> None:
        folder = str(quarantine_dir(self.tree))
        held = event.held
        reencoded = not body and held is not None
        if reencoded:  # decoded, then refused for a name: ``Ingest.add`` kept only the event
            assert held is not None
            body = (
                encode_annotation(held) if isinstance(held, AnnotationEvent) else encode_bulk(held)
            )
        record = {
            "offset": offset,
            "partition": self.partition,
            "reason": event.reason,
            "status": event.status,
            "name": event.name,
            "bytes": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "properties": {_text(k): _text(v) for k, v in properties.items()},
            **({"body": "re-encoded from the decoded event"} if reencoded else {}),
        }
        stem = f"{offset:020d}"
        plan.writes += [
            (f"{folder}/{stem}.bin", bytes(body)),
            (f"{folder}/{stem}.json", json.dumps(record, indent=2).encode()),
        ]


def real_names(decoded: Decoded) -> set[str]:
    """The names a message may touch: its event's, or those of the event it holds back."""
    event = candidate(decoded.event)
    return set(names_of(event)) if event is not None else set()


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value)[:200]
