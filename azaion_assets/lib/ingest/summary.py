"""What one partition held and what applying it did: the ingest run's metadata.

Kept apart from applying (``apply_events.py``) and planning (``planning.py``), which both add
to it: the figures and their JSON form are one record, whatever fills them in.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from azaion_assets.lib.stream.events import AnnotationEvent, BulkEvent, Decoded, Rejected

Event = AnnotationEvent | BulkEvent | Rejected
SAMPLE = 20  # how many unknown names or notes to keep verbatim in the summary
# A bulk Validated or Deleted message names no role, only an email (docs/message-contract.md).
BULK_ROLE = "(bulk, role not sent)"


@dataclass
class IngestSummary:
    """What one partition held and what applying it did; becomes the run's metadata.

    ``events`` and ``roles`` count the decoded messages only, so both total ``messages`` less
    ``quarantined``: a quarantined message has no trustworthy status or author. A bulk message
    carries no role, so it counts under ``BULK_ROLE`` rather than under a role it did not name.
    """

    messages: int = 0
    bytes: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    events: Counter[str] = field(default_factory=Counter)  # Created, Edited, Validated, Deleted
    roles: Counter[str] = field(default_factory=Counter)  # the author's role, or BULK_ROLE
    boxes: Counter[int] = field(default_factory=Counter)  # class slot -> boxes
    applied: int = 0  # (event, name) pairs applied now
    already_applied: int = 0  # skipped: committed by an earlier run
    written: Counter[str] = field(default_factory=Counter)  # content written to data / seed
    moved: Counter[str] = field(default_factory=Counter)  # files moved by bulk events
    unknown_names: int = 0
    unknown_resolved: int = 0  # unknown names of earlier-applied partitions that this one created
    unknown_sample: list[str] = field(default_factory=list)
    quarantined: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    # Names this partition left in data/ with new or changed content, and names it took out of
    # data/: what the retraining policy counts as changed (distinct names, not events).
    into_data: set[str] = field(default_factory=set)
    out_of_data: set[str] = field(default_factory=set)
    unchanged: int = 0  # content re-sent identical to what data/ held: not a change
    # ``count`` runs on the feeding thread, ``recount`` on the committer thread.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "bytes": self.bytes,
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "events": dict(sorted(self.events.items())),
            "roles": dict(sorted(self.roles.items())),
            "boxes": {str(k): v for k, v in sorted(self.boxes.items())},
            "applied": self.applied,
            "already_applied": self.already_applied,
            "written": dict(sorted(self.written.items())),
            "moved": dict(sorted(self.moved.items())),
            "unknown_names": self.unknown_names,
            "unknown_resolved": self.unknown_resolved,
            "unknown_sample": self.unknown_sample,
            "quarantined": self.quarantined,
            "quarantine_reasons": dict(self.quarantine_reasons.most_common(SAMPLE)),
            "notes": dict(self.notes.most_common(SAMPLE)),
            "into_data": sorted(self.into_data),
            "out_of_data": sorted(self.out_of_data),
            "unchanged": self.unchanged,
        }

    def placed(self, name: str, was_in_data: bool, in_data: bool, changed: bool) -> None:
        """Record where one event left ``name``: in data/ with changed content, or out of it.
        The last event of a name in the partition decides which set holds it."""
        if in_data and (changed or not was_in_data):
            self.into_data.add(name)
            self.out_of_data.discard(name)
        elif was_in_data and not in_data:
            self.out_of_data.add(name)
            self.into_data.discard(name)

    def count(self, offset: int, body: bytes, decoded: Decoded) -> None:
        """Count one message in: its size, offset, kind, author and boxes."""
        self.messages += 1
        self.bytes += len(body)
        first, last = self.first_offset, self.last_offset
        self.first_offset = offset if first is None else min(first, offset)
        self.last_offset = offset if last is None else max(last, offset)
        self.notes.update(decoded.notes)
        with self._lock:
            self._tally(decoded.event, 1)

    def recount(self, before: Event, after: Event) -> None:
        """Count a message under what applying it decided (``name_gate``), not what decoding
        did: a held-back event applied after all, or an event rejected for its name."""
        with self._lock:
            self._tally(before, -1)
            self._tally(after, 1)

    def _tally(self, event: Event, sign: int) -> None:
        if isinstance(event, Rejected):
            self.quarantined += sign
            _add(self.quarantine_reasons, event.reason.split(":")[0][:80], sign)
            return
        _add(self.events, event.status.name.title(), sign)
        if isinstance(event, AnnotationEvent):
            _add(self.roles, event.created_role.name.title(), sign)
            for d in event.detections:
                _add(self.boxes, d.cls, sign)
        else:
            _add(self.roles, BULK_ROLE, sign)


def _add(counter: Counter, key: Any, sign: int) -> None:
    counter[key] += sign
    if counter[key] <= 0:
        del counter[key]


def upgraded(stored: dict[str, Any]) -> dict[str, Any]:
    """A summary stored by an earlier version, as ``to_json`` writes it now: a reused partition
    must not bring back a "Rejected" status or bulk messages missing from ``roles``."""
    events = {k: v for k, v in stored.get("events", {}).items() if k != "Rejected"}
    roles = dict(stored.get("roles", {}))
    bulk = events.get("Validated", 0) + events.get("Deleted", 0)
    if bulk and BULK_ROLE not in roles:
        roles[BULK_ROLE] = bulk
    return {**stored, "events": events, "roles": dict(sorted(roles.items()))}
