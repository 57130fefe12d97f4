"""What the ingest has applied, per annotation name: a small SQLite database in the data tree.

Each name keeps the log of the events applied to it, as ``(offset, kind)`` pairs. Where a name's
files belong is a pure function of that log replayed in offset order (``replay``), so events may
be applied in any order (partitions run in parallel, a failed one is retried a day later) and the
tree still ends as if every event had been applied in stream order: later events win.

The log also makes applying idempotent: an event whose offset is already in its name's log was
committed after its files were in place, so applying it again is skipped. The database commits
once per group of events, after the group's files are durable; a crash in between re-applies the
group, whose effects are idempotent (see ``ingest``).
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


class Place(enum.StrEnum):
    DATA = "data"
    SEED = "seed"
    DELETED = "deleted"


class Kind(enum.IntEnum):
    """What an event does to its name, as far as placement is concerned."""

    CONTENT_VALIDATED = 1  # Created/Edited by a validator: the content goes to data/
    CONTENT_SEED = 2  # Created/Edited by anyone else: the content goes to data-seed/
    VALIDATE = 3  # bulk Validated: data-seed/ -> data/
    DELETE = 4  # bulk Deleted: anywhere -> data_deleted/


@dataclass
class NameState:
    """One name's applied events and the image extension of its newest content."""

    log: list[tuple[int, Kind]] = field(default_factory=list)
    ext: str | None = None

    def has(self, offset: int) -> bool:
        return any(o == offset for o, _ in self.log)

    def with_event(self, offset: int, kind: Kind) -> NameState:
        return NameState(sorted([*self.log, (offset, kind)]), self.ext)


@dataclass(frozen=True)
class Placement:
    """Where a name's files belong after replaying its log, and which event wrote them."""

    place: Place | None  # None: no content event yet (a Validate or Delete of an unknown name)
    content_offset: int | None
    unknown_at: frozenset[int] = frozenset()  # offsets of bulk events that found no annotation


def replay(log: Iterable[tuple[int, Kind]]) -> Placement:
    """Apply the routing rules of the Azaion contract to one name's events in offset order."""
    place: Place | None = None
    content: int | None = None
    unknown: set[int] = set()
    for offset, kind in sorted(log):
        if kind is Kind.CONTENT_VALIDATED:
            place, content = Place.DATA, offset
        elif kind is Kind.CONTENT_SEED:
            place, content = Place.SEED, offset
        elif place is None:
            unknown.add(offset)
        elif kind is Kind.VALIDATE and place is Place.SEED:
            place = Place.DATA
        elif kind is Kind.DELETE:
            place = Place.DELETED
    return Placement(place, content, frozenset(unknown))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS names (
    name TEXT PRIMARY KEY,
    log  TEXT NOT NULL,        -- JSON [[offset, kind], ...] in offset order
    ext  TEXT                  -- image extension of the newest content
);
CREATE TABLE IF NOT EXISTS partitions (
    partition   TEXT PRIMARY KEY,
    first       INTEGER NOT NULL,
    last        INTEGER NOT NULL,
    summary     TEXT,          -- JSON, once the partition has been applied completely
    applied_at  TEXT
);
"""


class IngestState:
    """The per-name event logs and the applied partitions, in ``<root>/.ingest/state.sqlite``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # A run opens it on one thread and applies on another, never both at once.
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit survives a power cut
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> IngestState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, names: Iterable[str]) -> dict[str, NameState]:
        wanted = list(dict.fromkeys(names))
        found: dict[str, NameState] = {n: NameState() for n in wanted}
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT name, log, ext FROM names WHERE name IN ({marks})", part
            )
            for name, log, ext in rows:
                found[name] = NameState([(o, Kind(k)) for o, k in json.loads(log)], ext)
        return found

    def save(self, states: dict[str, NameState]) -> None:
        """Commit the new logs of a group in one durable transaction."""
        rows = [
            (name, json.dumps([[o, int(k)] for o, k in s.log]), s.ext) for name, s in states.items()
        ]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT INTO names (name, log, ext) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET log = excluded.log, ext = excluded.ext",
                rows,
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def partition_summary(self, partition: str) -> dict | None:
        row = self._db.execute(
            "SELECT summary FROM partitions WHERE partition = ? AND summary IS NOT NULL",
            (partition,),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def finish_partition(
        self, partition: str, first: int, last: int, summary: dict, at: str
    ) -> None:
        self._db.execute(
            "INSERT INTO partitions (partition, first, last, summary, applied_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(partition) DO UPDATE SET "
            "summary = excluded.summary, applied_at = excluded.applied_at",
            (partition, first, last, json.dumps(summary), at),
        )

    def totals(self) -> dict[str, int]:
        """Sums over every applied partition, for summaries."""
        out = {"partitions": 0, "messages": 0, "quarantined": 0, "unknown_names": 0}
        resolved = 0
        for (summary,) in self._db.execute(
            "SELECT summary FROM partitions WHERE summary IS NOT NULL"
        ):
            data = json.loads(summary)
            out["partitions"] += 1
            for key in ("messages", "quarantined", "unknown_names"):
                out[key] += int(data.get(key, 0))
            resolved += int(data.get("unknown_resolved", 0))
        out["unknown_names"] -= resolved  # counted unknown, then created by a later partition
        return out
