"""The split record: which split every annotation was put in, so that it stays there.

Frames of one video are near-identical, so a split by source keeps each video in one split
(``split.py``). Once an annotation has been in a dataset its split is recorded and kept in every
later dataset, whatever its video does: a test image never moves to train. The record is a small
SQLite database, ``<root>/.datasets/splits.sqlite``:

- ``splits(name, split, grp, grandfathered, assigned_at)``: one row per annotation ever formed
  into a dataset. ``grp`` is its video (NULL: no known source, its own group). ``grandfathered``
  is 1 where the split was set before this video was known: by the name hash of the datasets
  formed before this record existed (seeded from the newest ``datasets/azaion-*/`` folder the
  first time), or as an annotation whose source was unknown or another video then.
- ``groups(grp, split, assigned_at)``: the split of each video, set once: the split most of its
  recorded frames hold, or for a new video ``assign_split(video)``.
- ``meta``: ``seeded_from``, the dataset the record was seeded from ("" for none).

Forming loads it whole (one query per table) and commits what it added in one transaction
before it swaps the dataset in, under a tree-wide lock: a crash never leaves a dataset whose
split disagrees with the record, only names recorded for a dataset that never appeared.
"""

from __future__ import annotations

import os
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from azaion_assets.core.datatree import DATASET_PREFIX, DataTree
from azaion_assets.core.ingest_state import IngestState, state_file
from azaion_assets.core.locks import file_lock
from azaion_assets.core.split import SPLITS, assign_split

_SCHEMA = """
CREATE TABLE IF NOT EXISTS splits (
    name          TEXT PRIMARY KEY,
    split         TEXT NOT NULL,
    grp           TEXT,              -- the source video; NULL: its own group
    grandfathered INTEGER NOT NULL,  -- 1: split set before this video was known
    assigned_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    grp         TEXT PRIMARY KEY,
    split       TEXT NOT NULL,
    assigned_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

Row = tuple[str, str | None, int]  # split, group, grandfathered


def record_path(tree: DataTree) -> Path:
    return tree.root / ".datasets" / "splits.sqlite"


def group_of(media: str | None) -> str | None:
    """The group key of a source media name: the same video however it was spelled."""
    if media is None:
        return None
    return unicodedata.normalize("NFC", media).strip() or None


@contextmanager
def locked(tree: DataTree) -> Iterator[None]:
    """One forming run at a time reads and extends the record."""
    path = record_path(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_name("lock")):
        yield


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # a commit survives a power cut
    db.executescript(_SCHEMA)
    return db


def read_record(tree: DataTree) -> tuple[dict[str, Row], dict[str, str], bool]:
    """Every recorded name and video split, and whether the record was seeded yet."""
    path = record_path(tree)
    if not path.exists():
        return {}, {}, False
    with closing(_connect(path)) as db:
        rows = {
            name: (split, grp, gf)
            for name, split, grp, gf in db.execute(
                "SELECT name, split, grp, grandfathered FROM splits"
            )
        }
        groups = dict(db.execute("SELECT grp, split FROM groups"))
        seeded = db.execute("SELECT 1 FROM meta WHERE key = 'seeded_from'").fetchone()
    return rows, groups, seeded is not None


def source_groups(tree: DataTree) -> dict[str, str]:
    """The video of every annotation the ingest knows the source of, in one query."""
    path = state_file(tree.root)
    if not path.exists():
        return {}  # a tree written without the stream: every annotation is its own group
    with IngestState(path) as state:
        media = state.media()
    return {name: g for name, m in media.items() if (g := group_of(m)) is not None}


def newest_dataset_splits(tree: DataTree) -> tuple[str, dict[str, str]]:
    """The newest formed dataset's folder name and each of its names' split ("", {} if none)."""
    folders = [p for p in tree.datasets.glob(f"{DATASET_PREFIX}*") if p.is_dir()]
    if not folders:
        return "", {}
    newest = max(folders, key=lambda p: p.name)
    found: dict[str, str] = {}
    for split in SPLITS:
        labels = newest / split / "labels"
        if labels.is_dir():
            for f in os.listdir(labels):
                if f.endswith(".txt") and not f.startswith("."):
                    found.setdefault(f[:-4], split)
    return newest.name, found


@dataclass
class SourceStats:
    """Videos and frames per split of one dataset; what the dataset check tests."""

    videos: dict[str, int]  # distinct groups: a frame without a known video counts as one
    frames: dict[str, int]
    unsourced: dict[str, int]  # frames without a known video
    grandfathered: int  # frames kept in a split other than their video's
    grandfathered_videos: int  # videos holding such frames
    straddling: list[str] = field(default_factory=list)  # videos in train and test otherwise

    def to_json(self) -> dict:
        return {
            "videos": self.videos,
            "frames": self.frames,
            "unsourced": self.unsourced,
            "grandfathered": self.grandfathered,
            "grandfathered_videos": self.grandfathered_videos,
            "straddling": self.straddling,
        }


def tally(members: Iterable[tuple[str, Row]], groups: dict[str, str]) -> SourceStats:
    """Count ``(name, (split, group, grandfathered))`` of one dataset against video splits.

    A frame is grandfathered where its split is not its video's and was set before the video
    was known; a video straddles where its other frames are in both train and test.
    """
    frames, unsourced = Counter[str](), Counter[str]()
    videos: dict[str, set[str]] = {s: set() for s in SPLITS}
    conforming: dict[str, set[str]] = {}
    kept: set[str] = set()
    grandfathered = 0
    for _, (split, grp, gf) in members:
        frames[split] += 1
        if grp is None:
            unsourced[split] += 1
            continue
        videos[split].add(grp)
        if gf and split != groups.get(grp, split):
            grandfathered += 1
            kept.add(grp)
        else:
            conforming.setdefault(grp, set()).add(split)
    return SourceStats(
        videos={s: len(videos[s]) + unsourced[s] for s in SPLITS},
        frames={s: frames[s] for s in SPLITS},
        unsourced={s: unsourced[s] for s in SPLITS},
        grandfathered=grandfathered,
        grandfathered_videos=len(kept),
        straddling=sorted(g for g, s in conforming.items() if {"train", "test"} <= s),
    )


class SourceSplits:
    """The split of every name in one forming run: recorded, its video's, or a new one.

    Loads the record, the ingest's sources and (the first time) the newest dataset once;
    ``split_of`` is then a few dictionary lookups per name.
    """

    def __init__(self, tree: DataTree, percentages: tuple[int, int, int]) -> None:
        self.path, self.percentages = record_path(tree), percentages
        self.sources = source_groups(tree)
        self.rows, self.groups, seeded = read_record(tree)
        self._seeded_from: str | None = None  # set when this run seeds the record
        self._seeds: list[str] = []
        if not seeded:
            self._seeded_from, earlier = newest_dataset_splits(tree)
            for name, split in earlier.items():
                self.rows.setdefault(name, (split, self.sources.get(name), 1))
                self._seeds.append(name)
        self._moved: list[str] = []  # recorded names whose video is not the recorded one
        for name, (split, grp, _) in self.rows.items():
            if self.sources.get(name) != grp:
                self.rows[name] = (split, self.sources.get(name), 1)
                self._moved.append(name)
        self._new_groups: list[str] = []
        self._members: dict[str, Counter[str]] | None = None
        self.planned: dict[str, str] = {}

    def split_of(self, name: str) -> str:
        row = self.rows.get(name)
        if row is not None:
            split = row[0]
        else:
            grp = self.sources.get(name)
            if grp is None:
                split = assign_split(name, self.percentages)
            else:
                split = self.groups.get(grp) or self._new_group(grp)
        self.planned[name] = split
        return split

    def _new_group(self, grp: str) -> str:
        """The split of a video not yet recorded: most of its recorded frames', else its hash."""
        if self._members is None:
            self._members = {}
            for split, g, _ in self.rows.values():
                if g is not None:
                    self._members.setdefault(g, Counter())[split] += 1
        hashed = assign_split(grp, self.percentages)
        counts = self._members.get(grp)
        split = hashed
        if counts:
            most = max(counts.values())
            if counts[hashed] < most:
                split = next(s for s in SPLITS if counts[s] == most)
        self.groups[grp] = split
        self._new_groups.append(grp)
        return split

    def commit(self, formed: Iterable[str]) -> SourceStats:
        """Record the splits of the names ``formed`` into the dataset (in one transaction)."""
        at = datetime.now(UTC).isoformat()
        new: list[tuple] = []
        members: list[tuple[str, Row]] = []
        for name in formed:
            split = self.planned[name]
            row = self.rows.get(name)
            if row is None:
                row = (split, self.sources.get(name), 0)
                self.rows[name] = row
                new.append((name, *row, at))
            members.append((name, row))
            if row[1] is not None and row[1] not in self.groups:
                self._new_group(row[1])  # a video only grandfathered frames hold so far
        seeds = [(n, *self.rows[n], at) for n in self._seeds]
        moved = [(self.rows[n][1], n) for n in self._moved]
        groups = [(g, self.groups[g], at) for g in self._new_groups]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(_connect(self.path)) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                insert = "INSERT INTO splits VALUES (?, ?, ?, ?, ?)"
                db.executemany(insert.replace("INSERT", "INSERT OR IGNORE"), seeds)
                db.executemany(insert, new)
                db.executemany("UPDATE splits SET grp = ?, grandfathered = 1 WHERE name = ?", moved)
                db.executemany("INSERT OR IGNORE INTO groups VALUES (?, ?, ?)", groups)
                if self._seeded_from is not None:
                    db.execute(
                        "INSERT OR IGNORE INTO meta VALUES ('seeded_from', ?)", (self._seeded_from,)
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self._seeds, self._moved, self._new_groups, self._seeded_from = [], [], [], None
        return tally(members, self.groups)


def tally_dataset(tree: DataTree, dataset_dir: Path) -> tuple[SourceStats, dict[str, str]]:
    """Tally a formed dataset as it is on disk against the record, for the dataset check; and
    the names whose split there is not the recorded one (never, unless the record was lost)."""
    rows, groups, _ = read_record(tree)
    members: list[tuple[str, Row]] = []
    unlike: dict[str, str] = {}
    for split in SPLITS:
        labels = dataset_dir / split / "labels"
        if not labels.is_dir():
            continue
        for f in sorted(os.listdir(labels)):
            if f.endswith(".txt") and not f.startswith("."):
                name = f[:-4]
                recorded, grp, gf = rows.get(name, (split, None, 0))
                if recorded != split:
                    unlike[name] = f"in {split}, recorded in {recorded}"
                members.append((name, (split, grp, gf)))
    return tally(members, groups), unlike
