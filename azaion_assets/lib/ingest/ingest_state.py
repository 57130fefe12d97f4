"""What the ingest has applied, per annotation name: a small SQLite database in the data tree.

Each name keeps the log of the events applied to it, as ``(offset, kind)`` pairs. Where a name's
files belong is a pure function of that log replayed in offset order (``replay``), so events may
be applied in any order (partitions run in parallel, a failed one is retried a day later) and the
tree still ends as if every event had been applied in stream order: later events win.

The log also makes applying idempotent: an event whose offset is already in its name's log was
committed after its files were in place, so applying it again is skipped. The database commits
once per group of events, after the group's files are durable; a crash in between re-applies the
group, whose effects are idempotent (see ``ingest``).

Each name also keeps the ``Origin`` of its newest content (source video, position, author role,
date), committed in the same row as its log: forming keeps the frames of one video in one split.
Databases of older versions gain these columns in place when opened; their names have none.

Each name also keeps its ``look`` (``confusables``: the TR39 skeleton of its fold), indexed: a
new name that collides with a stored one by case, Unicode form or look is found in one query per
group. The Unicode version the looks were computed with is kept too; when ICU's data changes,
every look is computed anew on opening (a few seconds a million names).

Each applied segment of a partition (the offsets one run applied; a whole partition before
partitions filled over several runs) is a row with its summary: the day's totals sum them.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from azaion_assets.lib.fsio import sqlitedb
from azaion_assets.lib.stream.confusables import look, unicode_version


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


@dataclass(frozen=True)
class Origin:
    """Where a name's newest content came from: a frame of a video, by an author, on a date."""

    media: str  # original_media_name, as sent
    ticks: int  # position in the media, in 100-ns ticks
    role: int  # the author's Role
    created: str  # createdDate, ISO 8601


@dataclass
class NameState:
    """One name's applied events, and the image extension and origin of its newest content."""

    log: list[tuple[int, Kind]] = field(default_factory=list)
    ext: str | None = None
    origin: Origin | None = None

    def has(self, offset: int) -> bool:
        return any(o == offset for o, _ in self.log)

    def with_event(self, offset: int, kind: Kind) -> NameState:
        return NameState(sorted([*self.log, (offset, kind)]), self.ext, self.origin)


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
    ext  TEXT,                 -- image extension of the newest content
    media   TEXT,              -- its Origin (NULL for names applied by older versions)
    ticks   INTEGER,
    role    INTEGER,
    created TEXT,
    look    TEXT               -- confusables.look(name): where names that look alike collide
);
CREATE TABLE IF NOT EXISTS facts (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS partitions (
    partition   TEXT PRIMARY KEY,  -- the segment's range (a whole partition, before segments)
    first       INTEGER NOT NULL,
    last        INTEGER NOT NULL,
    summary     TEXT,          -- JSON, once the segment has been applied completely
    applied_at  TEXT
);
CREATE INDEX IF NOT EXISTS partitions_applied_at ON partitions (applied_at);
"""
_APPLIED = "summary IS NOT NULL AND applied_at >= ? AND applied_at < ?"
_ADDED_COLUMNS = {
    "media": "TEXT",
    "ticks": "INTEGER",
    "role": "INTEGER",
    "created": "TEXT",
    "look": "TEXT",
}
_LOOKS_FROM = "looks computed with"  # the facts key: the Unicode data of the stored looks


def _origin_row(origin: Origin | None) -> tuple:
    if origin is None:
        return (None, None, None, None)
    return (origin.media, origin.ticks, origin.role, origin.created)


def state_file(root: Path) -> Path:
    """The ingest state of the data tree at ``root``."""
    return root / ".ingest" / "state.sqlite"


class IngestState:
    """The per-name event logs and the applied partitions, in ``<root>/.ingest/state.sqlite``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # A run opens it on one thread and applies on another, never both at once.
        self._db = sqlitedb.connect(path, _SCHEMA, check_same_thread=False)
        self._migrate()

    def _migrate(self) -> None:
        """Bring a database made by an older version, or by another version of Unicode's
        confusables data, up to date in place: add the origin and look columns, compute the
        look of every name if any is missing or stale, index it."""
        if self._missing_columns() or self._stale_looks():
            with sqlitedb.transaction(self._db):  # another process may be migrating it too
                for column in self._missing_columns():
                    self._db.execute(
                        f"ALTER TABLE names ADD COLUMN {column} {_ADDED_COLUMNS[column]}"
                    )
                if self._stale_looks():
                    names = [row[0] for row in self._db.execute("SELECT name FROM names")]
                    self._db.executemany(
                        "UPDATE names SET look = ? WHERE name = ?", ((look(n), n) for n in names)
                    )
                    self._db.execute(
                        "INSERT OR REPLACE INTO facts VALUES (?, ?)",
                        (_LOOKS_FROM, unicode_version()),
                    )
        self._db.execute("CREATE INDEX IF NOT EXISTS names_look ON names (look)")
        # Databases of the versions that kept each name's fold keep the column, unused; its
        # index is dropped.
        self._db.execute("DROP INDEX IF EXISTS names_fold")

    def _missing_columns(self) -> list[str]:
        present = {row[1] for row in self._db.execute("PRAGMA table_info(names)")}
        return [c for c in _ADDED_COLUMNS if c not in present]

    def _stale_looks(self) -> bool:
        """Looks missing (a version before them) or computed from other Unicode data."""
        if "look" in self._missing_columns():
            return True
        row = self._db.execute("SELECT value FROM facts WHERE key = ?", (_LOOKS_FROM,)).fetchone()
        if row is None or row[0] != unicode_version():
            return True
        return bool(self._db.execute("SELECT 1 FROM names WHERE look IS NULL LIMIT 1").fetchone())

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
                f"SELECT name, log, ext, media, ticks, role, created FROM names "
                f"WHERE name IN ({marks})",
                part,
            )
            for name, log, ext, media, ticks, role, created in rows:
                origin = None if media is None else Origin(media, ticks, role, created)
                found[name] = NameState([(o, Kind(k)) for o, k in json.loads(log)], ext, origin)
        return found

    def save(self, states: dict[str, NameState]) -> None:
        """Commit the new logs of a group in one durable transaction."""
        rows = [
            (
                name,
                json.dumps([[o, int(k)] for o, k in s.log]),
                s.ext,
                *_origin_row(s.origin),
                look(name),
            )
            for name, s in states.items()
        ]
        with sqlitedb.transaction(self._db):
            self._db.executemany(
                "INSERT INTO names (name, log, ext, media, ticks, role, created, look) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "log = excluded.log, ext = excluded.ext, media = excluded.media, "
                "ticks = excluded.ticks, role = excluded.role, created = excluded.created",
                rows,
            )

    def holders(self, looks: Iterable[str]) -> dict[str, list[str]]:
        """The stored names under each of ``looks`` (``confusables.look``), by the index."""
        wanted = list(dict.fromkeys(looks))
        found: dict[str, list[str]] = {}
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT look, name FROM names WHERE look IN ({marks}) ORDER BY rowid", part
            )
            for key, name in rows:
                found.setdefault(key, []).append(name)
        return found

    def media(self) -> dict[str, str]:
        """The source media name of every name whose origin is known, in one query."""
        return dict(self._db.execute("SELECT name, media FROM names WHERE media IS NOT NULL"))

    def positions(self) -> dict[str, tuple[str, int]]:
        """The source media and position in it (ticks) of every name whose origin is known."""
        rows = self._db.execute("SELECT name, media, ticks FROM names WHERE media IS NOT NULL")
        return {name: (media, ticks or 0) for name, media, ticks in rows}

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

    def applied_in(self, first: int, last: int) -> list[tuple[int, int]]:
        """The applied segments that lie within ``[first, last]``, in stream order."""
        rows = self._db.execute(
            "SELECT first, last FROM partitions WHERE summary IS NOT NULL AND first >= ? "
            "AND last <= ? ORDER BY first",
            (first, last),
        )
        return [(int(a), int(b)) for a, b in rows]

    def applied_between(self, start: str, end: str) -> list[str]:
        """The segments applied in ``[start, end)`` (ISO UTC times), in stream order."""
        rows = self._db.execute(
            f"SELECT partition FROM partitions WHERE {_APPLIED} ORDER BY first", (start, end)
        )
        return [row[0] for row in rows]

    def into_data_between(self, start: str, end: str, limit: int) -> list[tuple[str, str]]:
        """The latest ``limit`` names the segments applied in ``[start, end)`` brought into
        data/, newest first, with the extension of each one's image (empty if unknown)."""
        rows = self._db.execute(
            "SELECT j.value, COALESCE(names.ext, '') FROM partitions, "
            "json_each(partitions.summary, '$.into_data') AS j "
            f"LEFT JOIN names ON names.name = j.value WHERE {_APPLIED} "
            "ORDER BY partitions.first DESC, j.id DESC LIMIT ?",
            (start, end, limit),
        )
        return [(str(name), str(ext)) for name, ext in rows]

    def total_between(self, start: str, end: str, path: str) -> int:
        """The number at JSON ``path`` in the summaries of those partitions, summed.

        The day's totals are asked for after every ingest run: the ``applied_at`` index keeps
        the cost to the day's partitions whatever the history, and summing in SQLite takes
        0.55-0.87x the time of parsing each summary in Python (``bench/day_totals.py``).
        """
        (total,) = self._db.execute(
            f"SELECT TOTAL(json_extract(summary, ?)) FROM partitions WHERE {_APPLIED}",
            (path, start, end),
        ).fetchone()
        return int(total)

    def counts_between(self, start: str, end: str, field: str) -> dict[str, int]:
        """One count map of the summaries (``events``, ``roles``, ...), summed by key."""
        rows = self._db.execute(
            "SELECT j.key, SUM(j.value) FROM partitions, json_each(partitions.summary, ?) AS j "
            f"WHERE {_APPLIED} GROUP BY j.key",
            (f"$.{field}", start, end),
        )
        return {str(key): int(total) for key, total in rows}

    def totals(self) -> dict[str, int]:
        """Sums over every applied segment, for summaries."""
        out = {"segments": 0, "messages": 0, "quarantined": 0, "unknown_names": 0}
        resolved = 0
        for (summary,) in self._db.execute(
            "SELECT summary FROM partitions WHERE summary IS NOT NULL"
        ):
            data = json.loads(summary)
            out["segments"] += 1
            for key in ("messages", "quarantined", "unknown_names"):
                out[key] += int(data.get(key, 0))
            resolved += int(data.get("unknown_resolved", 0))
        out["unknown_names"] -= resolved  # counted unknown, then created by a later partition
        return out


def first_applied_at(root: Path) -> str | None:
    """When the data tree at ``root`` first finished a partition (ISO UTC), read without
    creating anything: the code location asks this while it loads."""
    path = state_file(root)
    if not path.is_file():
        return None
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute("SELECT MIN(applied_at) FROM partitions").fetchone()[0]
    finally:
        db.close()
