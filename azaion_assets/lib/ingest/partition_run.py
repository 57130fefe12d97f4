"""Ingest partitions, offset ranges of the stream, into the data tree.

The stream is read in a child process (``stream_reader``) and applied here, on a worker
thread, through a small bounded queue: reading (CPU in the stream client) and applying (decoding,
planning, and the file work) run on two cores, and memory stays flat however long the range is,
since a full queue stops this thread from receiving and a full pipe stops the reader. Messages
arrive in batches, so the threads do not trade the GIL and the queue's locks once per message.

A run applies a *segment* of each partition: the offsets it was asked for (``offsets``) that
fall in the partition's block, or the whole block. Each segment is recorded in the ingest state
under its own range once applied completely, with its own summary, so a partition that fills over
many runs is many segments. If retention has removed the start of a segment, the missing offsets
are reported as a gap and the rest is read. A segment applied completely before is not read
again: its stored summary is returned, so a re-run is cheap and changes nothing.

A run of several partitions (a backlog) reads their whole span over one connection and applies
each partition on its own, committing it before the next starts: a partition is either done,
with its own summary, or is read again by the retry.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.ingest.apply_events import GROUP_SIZE, Ingest, ensure_places, state_path
from azaion_assets.lib.ingest.ingest_state import IngestState
from azaion_assets.lib.ingest.summary import upgraded
from azaion_assets.lib.stream.limits import DEFAULT_LIMITS, MessageLimits
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets.lib.stream.range_reader import Item, StreamReader
from azaion_assets.lib.stream.stream_connection import StreamTarget
from azaion_assets.lib.text import plural

_BATCH = 32  # messages per hand-off from the reader to the applier
_BATCH_BYTES = 4 << 20  # or fewer, once their bodies reach this (a single message always goes)
# Bytes of message bodies queued for the applier. A count alone would let a run of 32 MB
# messages hold gigabytes; a budget in bytes bounds memory whatever the messages weigh (one batch
# always passes, so a message larger than the budget still goes through, alone).
QUEUE_BYTES = 32 << 20


@dataclass
class IngestResult:
    partition: str
    range: OffsetRange  # the segment of the partition's block that this run applied
    summary: dict[str, Any]
    gap: OffsetRange | None  # offsets removed by retention before they were read
    reused: bool  # applied completely by an earlier run; nothing was read
    seconds: float
    swept_temps: int = 0


class _Applier(threading.Thread):
    """Feeds queued messages to ``Ingest``; on failure keeps draining so the reader never hangs."""

    def __init__(self, ingest: Ingest, budget: int = QUEUE_BYTES) -> None:
        super().__init__(name="azaion-ingest-applier", daemon=True)
        self.ingest = ingest
        self.inbox: queue.SimpleQueue[tuple[list[Item], int] | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.budget, self.queued = budget, 0  # bytes of bodies queued and not yet applied
        self._room = threading.Condition()

    def offer(self, batch: list[Item]) -> bool:
        """Queue a batch; waits while the queue holds its budget of bytes (backpressure). False
        once the applier has failed: then nothing more is wanted, and the caller must not wait
        on it."""
        size = sum(len(item[1]) for item in batch)
        with self._room:
            while self.queued and self.queued + size > self.budget:
                if self.error is not None or not self.is_alive():
                    return False
                self._room.wait(timeout=0.5)
            if self.error is not None or not self.is_alive():
                return False
            self.queued += size
        self.inbox.put((batch, size))
        return True

    def close(self) -> None:
        self.inbox.put(None)

    def run(self) -> None:
        while (queued := self.inbox.get()) is not None:
            batch, size = queued
            if self.error is None:
                try:
                    for item in batch:
                        self.ingest.add(*item)
                except BaseException as exc:
                    self.error = exc
            with self._room:
                self.queued -= size
                self._room.notify_all()
        try:
            if self.error is None:
                try:
                    self.ingest.flush()
                except BaseException as exc:
                    self.error = exc
            else:
                self.ingest.settle()  # a group may still be applying: let it end before failing
        finally:
            self.ingest.close()  # the image judge's child ends with the messages


def ingest_partition(
    target: StreamTarget,
    tree: DataTree,
    partition: str,
    max_bytes: int,
    idle_timeout: float = 10.0,
    log: Callable[[str], None] = lambda _: None,
    group_size: int = GROUP_SIZE,
    message_limits: MessageLimits = DEFAULT_LIMITS,
) -> IngestResult:
    """Apply every message of one partition's offset range; raise ``StreamError`` on trouble."""
    (result,) = ingest_partitions(
        target, tree, [partition], max_bytes, idle_timeout, log, group_size, message_limits
    )
    return result


def ingest_partitions(
    target: StreamTarget,
    tree: DataTree,
    partitions: Sequence[str],
    max_bytes: int,
    idle_timeout: float = 10.0,
    log: Callable[[str], None] = lambda _: None,
    group_size: int = GROUP_SIZE,
    message_limits: MessageLimits = DEFAULT_LIMITS,
    segments: Mapping[str, OffsetRange] | None = None,
) -> Iterator[IngestResult]:
    """Apply a segment of several partitions, each completely and in offset order, reading the
    stream once: ``segments[partition]`` (``segment_of`` a run's offsets, ``resume_segments``),
    or the whole partition.

    Yields each partition's result once it is committed (those applied before come first, and
    cost no read). A failure raises after the partitions before it were committed: a retry
    reuses them and reads from the first one that is not. Messages of partitions between the
    ones to read that were applied before are read and dropped.
    """
    blocks = sorted((OffsetRange.parse(p), p) for p in partitions)
    if len({p for _, p in blocks}) != len(blocks):
        raise ValueError("a partition is listed twice")
    wanted = [(segments[p] if segments else block, p) for block, p in blocks]
    ensure_places(tree)
    with IngestState(state_path(tree)) as state:
        todo: list[tuple[OffsetRange, str]] = []
        for span, partition in wanted:
            started = time.monotonic()
            stored = state.partition_summary(span.key)
            if stored is None:
                todo.append((span, partition))
                continue
            stored = upgraded(stored)
            log(f"{partition}: {span.key} was applied before; nothing to read")
            gap = OffsetRange(**stored["gap"]) if stored.get("gap") else None
            yield IngestResult(partition, span, stored, gap, True, time.monotonic() - started)
        if todo:
            yield from _read_and_apply(
                target, tree, state, todo, max_bytes, idle_timeout, log, group_size, message_limits
            )


def resume_segments(tree: DataTree, partitions: Sequence[str], tail: int) -> dict[str, OffsetRange]:
    """What a run that names no offsets (one launched by hand) applies of each partition: from
    its first offset that no applied segment covers to the stream's ``tail``, so it reads
    nothing twice; a partition applied that far gets its newest segment again (reused, nothing
    read). Raises ``ValueError`` for a partition the stream has not reached."""
    out: dict[str, OffsetRange] = {}
    with IngestState(state_path(tree)) as state:
        for partition in partitions:
            block = OffsetRange.parse(partition)
            applied = state.applied_in(block.first, block.last)
            position = block.first
            for first, last in applied:
                if first > position:
                    break
                position = max(position, last + 1)
            end = min(block.last, tail)
            if position <= end:
                out[partition] = OffsetRange(position, end)
            elif applied:
                out[partition] = OffsetRange(*applied[-1])
            else:
                raise ValueError(f"partition {partition} is past the stream's tail {tail}")
    return out


def _read_and_apply(
    target: StreamTarget,
    tree: DataTree,
    state: IngestState,
    todo: list[tuple[OffsetRange, str]],
    max_bytes: int,
    idle_timeout: float,
    log: Callable[[str], None],
    group_size: int,
    message_limits: MessageLimits,
) -> Iterator[IngestResult]:
    """One reader over the span of ``todo``; each partition fed to its own ``Ingest``."""
    span = OffsetRange(todo[0][0].first, todo[-1][0].last)

    def start(position: int) -> _Partition:
        return _Partition(tree, state, *todo[position], max_bytes, group_size, message_limits)

    with StreamReader(target, span, idle_timeout, _BATCH, log, _BATCH_BYTES) as reader:
        position, current = 0, start(0)
        try:
            with current.ingest.locked():
                swept = current.ingest.sweep_stale_temps()  # while the reader starts
            if swept:
                log(f"removed {plural(swept, 'temp file')} left by an interrupted run")
            for index, items in _route(reader.batches(), [r for r, _ in todo]):
                while position < index:  # the partitions before have all their messages
                    yield (current or start(position)).finish(reader.gap, swept)
                    current, swept, position = None, 0, position + 1
                current = current or start(position)
                current.offer(items)
            while position < len(todo):  # the last, and any after it with no message
                yield (current or start(position)).finish(reader.gap, swept)
                current, swept, position = None, 0, position + 1
        finally:
            if current is not None:
                current.abandon()


def _route(
    batches: Iterable[list[Item]], spans: list[OffsetRange]
) -> Iterator[tuple[int, list[Item]]]:
    """Cut the reader's batches at partition boundaries: ``(index in spans, items)``, in order.
    Messages that fall between the spans (partitions applied before) are dropped."""
    index = 0
    for batch in batches:
        run: list[Item] = []
        for item in batch:
            offset = item[0]
            while index < len(spans) and offset > spans[index].last:
                if run:
                    yield index, run
                    run = []
                index += 1
            if index < len(spans) and offset >= spans[index].first:
                run.append(item)
        if run:
            yield index, run


class _Partition:
    """One partition being applied: its ``Ingest`` fed on an applier thread."""

    def __init__(
        self,
        tree: DataTree,
        state: IngestState,
        span: OffsetRange,
        partition: str,
        max_bytes: int,
        group_size: int,
        message_limits: MessageLimits,
    ) -> None:
        self.started = time.monotonic()
        self.state, self.span, self.partition = state, span, partition
        self.ingest = Ingest(tree, state, partition, max_bytes, group_size, message_limits)
        self.applier = _Applier(self.ingest)
        self.applier.start()

    def offer(self, items: list[Item]) -> None:
        if not self.applier.offer(items):
            self._close()  # the applier failed: raise its error

    def _close(self) -> None:
        self.applier.close()
        self.applier.join()
        if self.applier.error is not None:
            raise self.applier.error

    def abandon(self) -> None:
        """Stop the applier on the way out of a failure (its own error, if any, is dropped:
        the caller is raising another or this one already)."""
        if self.applier.is_alive():
            self.applier.close()
            self.applier.join()

    def finish(self, read_gap: OffsetRange | None, swept: int) -> IngestResult:
        """Wait until every message offered is committed, then record the partition done."""
        self._close()
        gap = _overlap(read_gap, self.span)
        summary = self.ingest.summary.to_json()
        summary["gap"] = {"first": gap.first, "last": gap.last} if gap else None
        s = self.span
        self.state.finish_partition(s.key, s.first, s.last, summary, datetime.now(UTC).isoformat())
        seconds = time.monotonic() - self.started
        return IngestResult(self.partition, s, summary, gap, False, seconds, swept)


def _overlap(a: OffsetRange | None, b: OffsetRange) -> OffsetRange | None:
    if a is None or a.last < b.first or b.last < a.first:
        return None
    return OffsetRange(max(a.first, b.first), min(a.last, b.last))
