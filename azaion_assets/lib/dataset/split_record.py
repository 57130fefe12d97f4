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

Forming loads it whole (a query or two per table) and commits what it added in one transaction
before it swaps the dataset in, under a tree-wide lock: a crash never leaves a dataset whose
split disagrees with the record, only names recorded for a dataset that never appeared.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from azaion_assets.lib.config.datatree import DATASET_PREFIX, DataTree
from azaion_assets.lib.dataset.split_stats import SourceStats, tally
from azaion_assets.lib.dataset.video_split import SPLITS, assign_split
from azaion_assets.lib.fsio import sqlitedb
from azaion_assets.lib.fsio.locks import file_lock
from azaion_assets.lib.ingest.ingest_state import IngestState, state_file
from azaion_assets.lib.labels.yolo_format import label_stems

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
    return sqlitedb.connect(path, _SCHEMA)


@dataclass
class Record:
    """The record as loaded: plain dictionaries, each filled by one query."""

    splits: dict[str, str] = field(default_factory=dict)  # name -> split
    groups: dict[str, str] = field(default_factory=dict)  # name -> video, where known
    grandfathered: set[str] = field(default_factory=set)  # names with a video, kept
    videos: dict[str, str] = field(default_factory=dict)  # video -> split
    seeded: bool = False


def read_record(tree: DataTree) -> Record:
    """The split record of the tree (empty if nothing was ever recorded)."""
    path = record_path(tree)
    if not path.exists():
        return Record()
    with closing(_connect(path)) as db:
        record = Record(splits=dict(db.execute("SELECT name, split FROM splits")))
        sourced = "SELECT name, grp, grandfathered FROM splits WHERE grp IS NOT NULL"
        for name, video, gf in db.execute(sourced):
            record.groups[name] = video
            if gf:
                record.grandfathered.add(name)
        record.videos = dict(db.execute("SELECT grp, split FROM groups"))
        record.seeded = (
            db.execute("SELECT 1 FROM meta WHERE key = 'seeded_from'").fetchone() is not None
        )
    return record


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
        for name in sorted(label_stems(newest / split / "labels")):
            found.setdefault(name, split)
    return newest.name, found


class SourceSplits:
    """The split of every name in one forming run: recorded, its video's, or a new one.

    Loads the record, the ingest's sources and (the first time) the newest dataset once;
    ``split_of`` is then a dictionary lookup or two per name, and a name without a recorded
    split costs a hash, as every name did before.
    """

    def __init__(self, tree: DataTree, percentages: tuple[int, int, int]) -> None:
        self.path, self.percentages = record_path(tree), percentages
        self.sources = source_groups(tree)
        self.record = record = read_record(tree)
        self._seeded_from: str | None = None  # set when this run seeds the record
        self._seeds: list[str] = []
        if not record.seeded:
            self._seeded_from, earlier = newest_dataset_splits(tree)
            for name, split in earlier.items():
                if name not in record.splits:
                    record.splits[name] = split
                    self._seeds.append(name)
                    if (video := self.sources.get(name)) is not None:
                        record.groups[name] = video
                        record.grandfathered.add(name)
        # Recorded names whose video is not the recorded one (it became known, or changed):
        # their split stays, set before this video was known.
        self._moved: list[str] = []
        differ = {name for name, _ in record.groups.items() ^ self.sources.items()}
        for name in differ & record.splits.keys():
            video = self.sources.get(name)
            self._moved.append(name)
            if video is None:
                del record.groups[name]
                record.grandfathered.discard(name)
            else:
                record.groups[name] = video
                record.grandfathered.add(name)
        self.new: dict[str, str] = {}  # names given a split by this run
        self._new_videos: list[str] = []
        self._members: dict[str, Counter[str]] | None = None

    def split_of(self, name: str) -> str:
        split = self.record.splits.get(name)
        if split is None:
            split = self.new.get(name)
            if split is None:
                video = self.sources.get(name)
                if video is None:
                    split = assign_split(name, self.percentages)
                else:
                    split = self.record.videos.get(video) or self._new_video(video)
                self.new[name] = split
        return split

    def _new_video(self, video: str) -> str:
        """The split of a video not yet recorded: most of its recorded frames', else its hash."""
        if self._members is None:
            self._members = {}
            for name, v in self.record.groups.items():
                self._members.setdefault(v, Counter())[self.record.splits[name]] += 1
        hashed = assign_split(video, self.percentages)
        counts = self._members.get(video)
        split = hashed
        if counts:
            most = max(counts.values())
            if counts[hashed] < most:
                split = next(s for s in SPLITS if counts[s] == most)
        self.record.videos[video] = split
        self._new_videos.append(video)
        return split

    def commit(self, formed: Iterable[str], frames: dict[str, int]) -> SourceStats:
        """Record the splits of the names ``formed`` into the dataset, whose split counts are
        ``frames``, in one transaction; return its videos and frames per split."""
        at = datetime.now(UTC).isoformat()
        record = self.record
        new: list[tuple] = []
        sourced: list[tuple[str, str, bool]] = []
        for name in formed:
            split = record.splits.get(name)
            if split is None:
                split = record.splits[name] = self.new[name]
                video = self.sources.get(name)
                if video is not None:
                    record.groups[name] = video
                new.append((name, split, video, 0, at))
            video = record.groups.get(name)
            if video is not None:
                sourced.append((split, video, name in record.grandfathered))
                if video not in record.videos:
                    self._new_video(video)  # a video only grandfathered frames hold so far
        seeds = [(n, record.splits[n], record.groups.get(n), 1, at) for n in self._seeds]
        moved = [(record.groups.get(n), n) for n in self._moved]
        videos = [(v, record.videos[v], at) for v in self._new_videos]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(_connect(self.path)) as db, sqlitedb.transaction(db):
            insert = "INSERT INTO splits VALUES (?, ?, ?, ?, ?)"
            db.executemany(insert.replace("INSERT", "INSERT OR IGNORE"), seeds)
            db.executemany(insert, new)
            db.executemany("UPDATE splits SET grp = ?, grandfathered = 1 WHERE name = ?", moved)
            db.executemany("INSERT OR IGNORE INTO groups VALUES (?, ?, ?)", videos)
            if self._seeded_from is not None:
                db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('seeded_from', ?)", (self._seeded_from,)
                )
        self._seeds, self._moved, self._new_videos, self._seeded_from = [], [], [], None
        self.new = {}
        return tally(frames, sourced, record.videos)


def tally_dataset(tree: DataTree, dataset_dir: Path) -> tuple[SourceStats, dict[str, str]]:
    """Tally a formed dataset as it is on disk against the record, for the dataset check; and
    the names whose split there is not the recorded one (never, unless the record was lost)."""
    record = read_record(tree)
    frames: dict[str, int] = {}
    sourced: list[tuple[str, str, bool]] = []
    unlike: dict[str, str] = {}
    for split in SPLITS:
        names = sorted(label_stems(dataset_dir / split / "labels"))
        frames[split] = len(names)
        for name in names:
            recorded = record.splits.get(name, split)
            if recorded != split:
                unlike[name] = f"in {split}, recorded in {recorded}"
            if (video := record.groups.get(name)) is not None:
                sourced.append((split, video, name in record.grandfathered))
    return tally(frames, sourced, record.videos), unlike
