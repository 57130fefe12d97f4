"""Apply Azaion annotation events to the data tree: idempotent, in any order, crash-safe.

Routing (the Azaion contract): Created or Edited by a validator goes to ``data/``, by anyone
else to ``data-seed/``; a bulk Validated moves ``data-seed/`` to ``data/``; a bulk Deleted moves
an annotation to ``data_deleted/`` from wherever it is. Where a name belongs is decided by
replaying its whole event log in offset order (``ingest_state.replay``), so partitions may be
applied in any order and later events still win.

Events are applied a **group** at a time; a group never touches a name twice, so its events are
independent and their file work can be batched:

1. plan every event against the names' logs (no file is touched);
2. write each new file to a hidden temp file beside its target and start writing it out (on a
   few threads: these system calls wait on the kernel and the disk, not the GIL);
3. wait until every temp file of the group is durable (one ``syncfs``);
4. rename temps into place, move and remove files as planned; fsync the touched directories;
5. commit the names' new logs (and the origin of new content) in one SQLite transaction.

Steps 1 to 5 run on a committer thread while the caller decodes the next group's messages;
the next group is planned only once this one is committed.

A crash before 5 re-applies the group later. Every effect is idempotent: a content write
replaces the files whole, and moves only ever converge on the replayed place. Stale temp files
from a crash are hidden (forming skips them) and swept by the next run.

A message that cannot be applied never stops the batch: its raw bytes and the reason go to
``data-corrupted/stream/<offset>.{bin,json}``.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import itertools
import json
import os
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.fsio.atomic import fsync_dir
from azaion_assets.lib.fsio.locks import file_lock
from azaion_assets.lib.ingest.ingest_state import (
    IngestState,
    Kind,
    NameState,
    Origin,
    Place,
    replay,
    state_file,
)
from azaion_assets.lib.stream.contract import (
    IMAGE_FORMATS,
    AnnotationEvent,
    BulkEvent,
    Decoded,
    Rejected,
    Status,
    decode_message,
)

TEMP_SUFFIX = ".ingest-tmp"
GROUP_SIZE = 128  # events per commit: amortises fsyncs and the SQLite commit
GROUP_BYTES = 64 << 20  # ...and a cap on the bytes a group holds (and on its open temp files)
_EXTENSIONS = tuple(sorted(set(IMAGE_FORMATS.values())))
_WRITE_THREADS = 8
_SAMPLE = 20  # how many unknown names or notes to keep verbatim in the summary


def state_path(tree: DataTree) -> Path:
    return state_file(tree.root)


def quarantine_dir(tree: DataTree) -> Path:
    return tree.corrupted.root / "stream"


@dataclass
class IngestSummary:
    """What one partition held and what applying it did; becomes the run's metadata."""

    messages: int = 0
    bytes: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    events: Counter[str] = field(default_factory=Counter)  # Created, Edited, ..., Rejected
    roles: Counter[str] = field(default_factory=Counter)
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
            "quarantine_reasons": dict(self.quarantine_reasons.most_common(_SAMPLE)),
            "notes": dict(self.notes.most_common(_SAMPLE)),
        }


@dataclass
class _Plan:
    """The file work of one group, on plain string paths (no ``Path`` objects per file)."""

    writes: list[tuple[str, bytes]] = field(default_factory=list)
    moves: list[tuple[str, str]] = field(default_factory=list)
    removals: list[str] = field(default_factory=list)  # removed if present
    states: dict[str, NameState] = field(default_factory=dict)


class Ingest:
    """Applies the messages of one partition, in stream order, a group at a time.

    Not thread-safe: feed it from one thread (groups are applied on a committer thread, one at
    a time, in order). Groups of concurrent runs are serialised by a lock on the data tree, so
    partitions can be read from the stream in parallel.
    """

    def __init__(
        self,
        tree: DataTree,
        state: IngestState,
        partition: str,
        max_bytes: int,
        group_size: int = GROUP_SIZE,
    ) -> None:
        self.tree, self.state, self.partition = tree, state, partition
        self.max_bytes, self.group_size = max_bytes, group_size
        self.summary = IngestSummary()
        self._group: list[tuple[int, bytes, Mapping[Any, Any], Decoded]] = []
        self._names: set[str] = set()
        self._group_bytes = 0
        self._applying: Future[None] | None = None  # the group on the committer thread
        places = {Place.DATA: tree.data, Place.SEED: tree.seed, Place.DELETED: tree.deleted}
        self._dirs = {
            p: {"images": str(a.images), "labels": str(a.labels)} for p, a in places.items()
        }
        self._lock_path = tree.root / ".ingest" / "lock"
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)

    # -- feeding ---------------------------------------------------------------------------

    def add(self, offset: int, body: bytes, properties: Mapping[Any, Any]) -> None:
        decoded = decode_message(body, properties, self.max_bytes)
        self._count(offset, body, decoded)
        names = _names_of(decoded, offset)
        full = len(self._group) >= self.group_size or self._group_bytes >= GROUP_BYTES
        if self._group and (full or names & self._names):
            self._hand_over()
        self._group_bytes += len(body)
        if not isinstance(decoded.event, Rejected):
            body = b""  # only a quarantine keeps the raw bytes; the event holds the image
        self._group.append((offset, body, properties, decoded))
        self._names |= names

    def flush(self) -> None:
        """Apply the pending group durably; return once every group added so far is applied."""
        self._hand_over()
        self._wait()

    def settle(self) -> None:
        """Wait for a group still being applied, ignoring its errors (the caller is failing
        already, and must not close the state under it)."""
        with suppress(BaseException):
            self._wait()

    def _hand_over(self) -> None:
        """Apply the pending group on the committer thread, while the caller decodes the next.

        Decoding is Python (the GIL), applying mostly waits on system calls, so the two
        overlap. The previous group is committed first: the plan of this one reads its logs.
        """
        if not self._group:
            return
        self._wait()
        group = self._group
        self._group, self._names, self._group_bytes = [], set(), 0
        self._applying = _committer().submit(self._apply, group)

    def _wait(self) -> None:
        """Wait until the group handed over last is committed; raise what applying it raised."""
        applying, self._applying = self._applying, None
        if applying is not None:
            applying.result()

    def _apply(self, group: list[tuple[int, bytes, Mapping[Any, Any], Decoded]]) -> None:
        with self.locked():
            plan = self._plan(group)
            self._execute(plan)
            self.state.save(plan.states)

    @contextmanager
    def locked(self) -> Iterator[None]:
        with file_lock(self._lock_path):
            yield

    def sweep_stale_temps(self) -> int:
        """Remove temp files left by a crashed run (call under ``locked``)."""
        removed = 0
        folders = [Path(d) for dirs in self._dirs.values() for d in dirs.values()]
        for folder in [*folders, quarantine_dir(self.tree)]:
            if not folder.is_dir():
                continue
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
                        Path(entry.path).unlink(missing_ok=True)
                        removed += 1
        return removed

    # -- planning --------------------------------------------------------------------------

    def _count(self, offset: int, body: bytes, decoded: Decoded) -> None:
        s = self.summary
        s.messages += 1
        s.bytes += len(body)
        s.first_offset = offset if s.first_offset is None else min(s.first_offset, offset)
        s.last_offset = offset if s.last_offset is None else max(s.last_offset, offset)
        s.notes.update(decoded.notes)
        event = decoded.event
        if isinstance(event, Rejected):
            s.events["Rejected"] += 1
            s.quarantined += 1
            s.quarantine_reasons[event.reason.split(":")[0][:80]] += 1
        elif isinstance(event, AnnotationEvent):
            s.events[event.status.name.title()] += 1
            s.roles[event.created_role.name.title()] += 1
            s.boxes.update(d.cls for d in event.detections)
        else:
            s.events[event.status.name.title()] += 1

    def _plan(self, group: list[tuple[int, bytes, Mapping[Any, Any], Decoded]]) -> _Plan:
        plan = _Plan()
        states = self.state.load(n for _, _, _, d in group for n in _real_names(d))
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

    def _plan_content(
        self, plan: _Plan, offset: int, event: AnnotationEvent, st: NameState
    ) -> None:
        if st.has(offset):
            self.summary.already_applied += 1
            return
        kind = Kind.CONTENT_VALIDATED if event.by_validator else Kind.CONTENT_SEED
        new = st.with_event(offset, kind)
        placed = replay(new.log)
        assert placed.place is not None
        self.summary.applied += 1
        # A Validate/Delete applied before this (earlier) Created was counted as unknown by its
        # own partition; now it has an annotation to act on.
        self.summary.unknown_resolved += len(replay(st.log).unknown_at - placed.unknown_at)
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
            plan.writes += [(image, event.image), (label, event.label_text().encode())]
            if st.log:  # else no file of this name was ever committed (see ``_copies``)
                plan.removals += [p for p in self._copies(event.name) if p not in (image, label)]
            self.summary.written[placed.place.value] += 1
        else:  # an older edit arriving late: it cannot win, only the placement may change
            self._relocate(plan, event.name, new.ext, placed.place)
        plan.states[event.name] = new

    def _plan_bulk(
        self, plan: _Plan, offset: int, event: BulkEvent, name: str, st: NameState
    ) -> None:
        if st.has(offset):
            self.summary.already_applied += 1
            return
        kind = Kind.VALIDATE if event.status is Status.VALIDATED else Kind.DELETE
        new = st.with_event(offset, kind)
        placed = replay(new.log)
        self.summary.applied += 1
        if offset in placed.unknown_at:
            self.summary.unknown_names += 1
            if len(self.summary.unknown_sample) < _SAMPLE:
                self.summary.unknown_sample.append(f"{event.status.name.title()} {name}")
        if placed.place is not None:
            moved = self._relocate(plan, name, new.ext, placed.place)
            if moved:
                self.summary.moved[f"to {placed.place.value}"] += 1
        plan.states[name] = new

    def _relocate(self, plan: _Plan, name: str, ext: str | None, place: Place) -> bool:
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

        Not checked here: ``_execute`` removes whichever exist after the renames (a stale copy
        must not outlive the commit, and a check is one of 16 lookups per written name).

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
        plan: _Plan,
        offset: int,
        body: bytes,
        properties: Mapping[Any, Any],
        event: Rejected,
    ) -> None:
        folder = str(quarantine_dir(self.tree))
        record = {
            "offset": offset,
            "partition": self.partition,
            "reason": event.reason,
            "status": event.status,
            "name": event.name,
            "bytes": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "properties": {_text(k): _text(v) for k, v in properties.items()},
        }
        stem = f"{offset:020d}"
        plan.writes += [
            (f"{folder}/{stem}.bin", bytes(body)),
            (f"{folder}/{stem}.json", json.dumps(record, indent=2).encode()),
        ]

    # -- executing -------------------------------------------------------------------------

    def _execute(self, plan: _Plan) -> None:
        touched: set[str] = set()
        for folder in {os.path.dirname(target) for target, _ in plan.writes}:
            os.makedirs(folder, exist_ok=True)
        pool = _pool()
        temps = _write_temps(pool, plan.writes)
        for tmp, (target, _) in zip(temps, plan.writes, strict=True):
            os.replace(tmp, target)
            touched.add(os.path.dirname(target))
        for source, target in plan.moves:
            try:
                os.replace(source, target)
            except FileNotFoundError:
                continue  # moved by an earlier attempt
            touched |= {os.path.dirname(source), os.path.dirname(target)}
        touched |= {os.path.dirname(p) for p in _remove_present(plan.removals)}
        for folder in touched:
            fsync_dir(Path(folder))


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """The write threads, started once per process and shared by every ``Ingest``: a pool per
    group started 8 threads 80 times per 10,000 messages, and each start waits for the new
    thread to get the GIL (1.5 s of the applier's time, measured)."""
    return ThreadPoolExecutor(_WRITE_THREADS, thread_name_prefix="azaion-ingest-write")


@functools.cache
def _committer() -> ThreadPoolExecutor:
    """The thread that applies one group while ``Ingest.add`` decodes the next."""
    return ThreadPoolExecutor(1, thread_name_prefix="azaion-ingest-commit")


for _threads in (_pool, _committer):  # threads do not survive a fork
    os.register_at_fork(after_in_child=_threads.cache_clear)


def _syncfs() -> Callable[[int], int] | None:
    """Linux ``syncfs(2)``: flush one filesystem's dirty data in one call, or None elsewhere."""
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _syncfs()


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux ``sync_file_range(2)``, or None elsewhere. Only ever called with
    ``SYNC_FILE_RANGE_WRITE``: it starts writing a file out and returns, which guarantees
    nothing (``syncfs`` still does); without it nothing is written until the group's
    ``syncfs``, which then waits on all of it while the writes of the next group cannot start.
    """
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return fn


_SYNC_FILE_RANGE = _sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def _sync_filesystems(folders: Iterable[str]) -> None:
    """Make every temp file written in ``folders`` durable: one ``syncfs`` per filesystem.

    Per group this replaces one fsync per file (two files per message), which costs this
    many times more kernel time; the order is unchanged: data durable first, renames after.
    Since Linux 5.8, ``syncfs`` reports writeback errors like ``fsync`` does.
    """
    assert _SYNCFS is not None
    by_device: dict[int, str] = {}
    for folder in folders:
        by_device.setdefault(os.stat(folder).st_dev, folder)
    for folder in by_device.values():
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _SYNCFS(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs: {os.strerror(err)}", folder)
        finally:
            os.close(fd)


_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_temp_tag = ""  # unique to this process (set below, and again in a forked child)...
_temp_serial = itertools.count()  # ...and a serial unique within it (``next`` holds the GIL)


def _new_temp_tag() -> None:
    global _temp_tag
    _temp_tag = f"{os.getpid()}-{secrets.token_hex(4)}"


_new_temp_tag()
os.register_at_fork(after_in_child=_new_temp_tag)


def _temp_path(target: str) -> str:
    """A fresh hidden temp name beside ``target``. ``mkstemp`` draws random names in Python,
    which cost as much as the file system calls; a name unique to this process needs no
    retries (and ``O_EXCL`` still refuses a clash)."""
    folder, name = os.path.split(target)
    return f"{folder}/.{name}.{_temp_tag}-{next(_temp_serial)}{TEMP_SUFFIX}"


def _write_temp(target: str, data: bytes) -> str:
    """Write ``data`` to a hidden temp file beside ``target``; return its path. It is fsynced
    here unless ``syncfs`` will make the whole group durable at once; then its write-out is
    only started here, so that the disk works while the group is still being written."""
    tmp = _temp_path(target)
    fd = os.open(tmp, _TEMP_FLAGS, 0o644)
    try:
        os.fchmod(fd, 0o644)  # whatever the umask, like the files the tree already holds
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if _SYNCFS is None:
            os.fsync(fd)
        elif _SYNC_FILE_RANGE is not None:
            _SYNC_FILE_RANGE(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def _shares(items: list, most: int) -> list[list]:
    """``items`` dealt out round-robin to at most ``most`` shares (one task per thread)."""
    count = max(1, min(most, len(items)))
    return [items[i::count] for i in range(count)]


def _write_temps(pool: ThreadPoolExecutor, writes: list[tuple[str, bytes]]) -> list[str]:
    """``_write_temp`` for every write, in write order, on the pool's threads: creating, writing
    and fsyncing a file are system calls that wait on the kernel and the disk, not on the GIL,
    so they overlap. On any failure every temp file made is removed and the first error is
    raised."""
    if not writes:
        return []
    shares = list(pool.map(_write_share, _shares(writes, _WRITE_THREADS)))
    threads = len(shares)
    errors = [error for _, error in shares if error is not None]
    if errors:
        for temps, _ in shares:
            for tmp in temps:
                Path(tmp).unlink(missing_ok=True)
        raise errors[0]
    temps = [shares[i % threads][0][i // threads] for i in range(len(writes))]
    if _SYNCFS is not None:
        try:
            _sync_filesystems({os.path.dirname(t) for t in temps})
        except BaseException:
            for tmp in temps:
                Path(tmp).unlink(missing_ok=True)
            raise
    return temps


def _write_share(writes: list[tuple[str, bytes]]) -> tuple[list[str], BaseException | None]:
    temps: list[str] = []
    try:
        for target, data in writes:
            temps.append(_write_temp(target, data))
    except BaseException as exc:  # handed to the caller, which removes the temps and raises
        return temps, exc
    return temps, None


def _remove_present(paths: list[str]) -> list[str]:
    """Remove whichever of ``paths`` exist; return those removed.

    Nearly all are absent (16 candidates per written name), so each is looked up first: a
    lookup is lock-free and costs 1 us, where ``unlink`` takes the directory's lock even when
    nothing is there and cost 3.4 us, contending with the writes into the same directory.
    """
    removed = []
    for path in paths:
        if not os.access(path, os.F_OK, follow_symlinks=False):
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def _names_of(decoded: Decoded, offset: int) -> set[str]:
    names = _real_names(decoded)
    return names or {f"\0quarantine:{offset}"}


def _real_names(decoded: Decoded) -> set[str]:
    event = decoded.event
    if isinstance(event, AnnotationEvent):
        return {event.name}
    if isinstance(event, BulkEvent):
        return set(event.names)
    return set()


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value)[:200]


def ensure_places(tree: DataTree) -> None:
    """The data tree and the stream quarantine exist."""
    tree.ensure()
    quarantine_dir(tree).mkdir(parents=True, exist_ok=True)
