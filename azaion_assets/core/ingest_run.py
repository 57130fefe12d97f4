"""Ingest one partition, an offset range of the stream, into the data tree.

The stream is read on this thread's event loop and applied on a worker thread, through a small
bounded queue: reading (CPU in the client) and applying (mostly waiting on fsync) overlap, and
memory stays flat however long the range is, since a full queue stops the reader. Messages are
handed over in batches, so the two threads do not trade the GIL and the queue's locks once per
message. The probe for the stream's head closes its connection while the range is read.

If retention has removed the start of the range, the missing offsets are reported as a gap and
the rest is read. A partition applied completely before is not read again: its stored summary is
returned, so a re-run is cheap and changes nothing.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azaion_assets.core.datatree import DataTree
from azaion_assets.core.ingest import GROUP_SIZE, Ingest, ensure_places, state_path
from azaion_assets.core.ingest_state import IngestState
from azaion_assets.core.offsets import OffsetRange
from azaion_assets.core.stream import StreamTarget, probe_head, read_range

_BATCH = 32  # messages per hand-off from the reader to the applier
_QUEUE = 4  # batches in flight: 128 messages, about 13 MB at 100 KB each

_Item = tuple[int, bytes, Mapping[Any, Any]]


@dataclass
class IngestResult:
    partition: str
    range: OffsetRange
    summary: dict[str, Any]
    gap: OffsetRange | None  # offsets removed by retention before they were read
    reused: bool  # applied completely by an earlier run; nothing was read
    seconds: float
    swept_temps: int = 0


class _Applier(threading.Thread):
    """Feeds queued messages to ``Ingest``; on failure keeps draining so the reader never hangs."""

    def __init__(self, ingest: Ingest) -> None:
        super().__init__(name="azaion-ingest-applier", daemon=True)
        self.ingest = ingest
        self.inbox: queue.Queue[list[_Item] | None] = queue.Queue(_QUEUE)
        self.error: BaseException | None = None

    def offer(self, batch: list[_Item]) -> None:
        """Queue a batch from the reader; waits while the queue is full (backpressure), and
        stops queueing once the applier has failed, so the reader can never hang on it."""
        while self.error is None and self.is_alive():
            try:
                self.inbox.put(batch, timeout=0.5)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        while (batch := self.inbox.get()) is not None:
            if self.error is None:
                try:
                    for item in batch:
                        self.ingest.add(*item)
                except BaseException as exc:
                    self.error = exc
        if self.error is None:
            try:
                self.ingest.flush()
            except BaseException as exc:
                self.error = exc
        else:
            self.ingest.settle()  # a group may still be applying: let it end before failing


def ingest_partition(
    target: StreamTarget,
    tree: DataTree,
    partition: str,
    max_bytes: int,
    idle_timeout: float = 10.0,
    log: Callable[[str], None] = lambda _: None,
    group_size: int = GROUP_SIZE,
) -> IngestResult:
    """Apply every message of the partition's offset range; raise ``StreamError`` on trouble."""
    started = time.monotonic()
    wanted = OffsetRange.parse(partition)
    ensure_places(tree)
    with IngestState(state_path(tree)) as state:
        stored = state.partition_summary(partition)
        if stored is not None:
            log(f"{partition} was applied before; nothing to read")
            gap = OffsetRange(**stored["gap"]) if stored.get("gap") else None
            return IngestResult(partition, wanted, stored, gap, True, time.monotonic() - started)
        ingest = Ingest(tree, state, partition, max_bytes, group_size)
        with ingest.locked():
            swept = ingest.sweep_stale_temps()
        if swept:
            log(f"removed {swept} temp files left by an interrupted run")
        applier = _Applier(ingest)
        applier.start()
        try:
            gap = asyncio.run(_probe_and_read(target, wanted, applier, idle_timeout, log))
        finally:
            applier.inbox.put(None)
            applier.join()
        if applier.error is not None:
            raise applier.error
        summary = ingest.summary.to_json()
        summary["gap"] = {"first": gap.first, "last": gap.last} if gap else None
        state.finish_partition(
            partition, wanted.first, wanted.last, summary, datetime.now(UTC).isoformat()
        )
    return IngestResult(partition, wanted, summary, gap, False, time.monotonic() - started, swept)


async def _probe_and_read(
    target: StreamTarget,
    wanted: OffsetRange,
    applier: _Applier,
    idle_timeout: float,
    log: Callable[[str], None],
) -> OffsetRange | None:
    """Read what is left of ``wanted`` into the applier's inbox; return the retention gap."""
    closing: set[asyncio.Task[None]] = set()
    try:
        head = await probe_head(target, closing=closing)
        gap, start = _gap(wanted, head)
        if gap is not None:
            log(f"offsets {gap.first}..{gap.last} were removed by retention before being read")
        if start is not None:
            batch: list[_Item] = []

            def deliver(offset: int, body: bytes, properties: Mapping[Any, Any]) -> None:
                batch.append((offset, body, properties))
                if len(batch) >= _BATCH:
                    applier.offer(batch.copy())  # waits while the queue is full
                    batch.clear()

            await read_range(target, start, wanted.last, deliver, idle_timeout=idle_timeout)
            if batch:
                applier.offer(batch)
        return gap
    finally:
        await asyncio.gather(*closing, return_exceptions=True)  # the probe's connection


def _gap(wanted: OffsetRange, head: int | None) -> tuple[OffsetRange | None, int | None]:
    """The part of ``wanted`` lost to retention, and where reading starts (None: nothing left)."""
    if head is None:  # the stream is empty: everything it held was removed
        return wanted, None
    if head <= wanted.first:
        return None, wanted.first
    if head > wanted.last:
        return wanted, None
    return OffsetRange(wanted.first, head - 1), head
