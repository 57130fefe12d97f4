"""The project's small SQLite stores (ingest state, split record): one way to open them, one
way to write them.

WAL lets readers (sensors, checks) read while a writer commits; ``synchronous=FULL`` makes a
commit survive a power cut. Writes take the write lock up front (``BEGIN IMMEDIATE``), so two
processes never both read and then fail to upgrade.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def connect(path: Path, schema: str, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) a durable store with ``schema``; autocommit outside
    ``transaction``."""
    db = sqlite3.connect(
        path, timeout=60, isolation_level=None, check_same_thread=check_same_thread
    )
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(schema)
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One durable write transaction: committed at the end of the block, rolled back on any
    exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
