"""Ingest one partition, an offset range of the stream, into the data tree.

The stream is read in a child process (``stream_reader``) and applied here, on a worker
thread, through a small bounded queue: reading (CPU in the stream client) and applying (decoding,
planning, and the file work) run on two cores, and memory stays flat however long the range is,
since a full queue stops this thread from receiving and a full pipe stops the reader. Messages
arrive in batches, so the threads do not trade the GIL and the queue's locks once per message.

If retention has removed the start of the range, the missing offsets are reported as a gap and
the rest is read. A partition applied completely before is not read again: its stored summary is
returned, so a re-run is cheap and changes nothing.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azaion_assets.core.datatree import DataTree
from azaion_assets.core.ingest import GROUP_SIZE, Ingest, ensure_places, state_path
from azaion_assets.core.ingest_state import IngestState
from azaion_assets.core.offsets import OffsetRange
from azaion_assets.core.stream import StreamTarget
from azaion_assets.core.stream_reader import Item, StreamReader

_BATCH = 32  # messages per hand-off from the reader to the applier
_QUEUE = 4  # batches in flight: 128 messages, about 13 MB at 100 KB each


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
        self.inbox: queue.Queue[list[Item] | None] = queue.Queue(_QUEUE)
        self.error: BaseException | None = None

    def offer(self, batch: list[Item]) -> bool:
        """Queue a batch; waits while the queue is full (backpressure). False once the applier
        has failed: then nothing more is wanted, and the caller must not wait on it."""
        while self.error is None and self.is_alive():
            try:
                self.inbox.put(batch, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

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
        with StreamReader(target, wanted, idle_timeout, _BATCH, log) as reader:
            ingest = Ingest(tree, state, partition, max_bytes, group_size)
            with ingest.locked():
                swept = ingest.sweep_stale_temps()  # while the reader starts
            if swept:
                log(f"removed {swept} temp files left by an interrupted run")
            _apply(reader, ingest)
            gap = reader.gap
        summary = ingest.summary.to_json()
        summary["gap"] = {"first": gap.first, "last": gap.last} if gap else None
        state.finish_partition(
            partition, wanted.first, wanted.last, summary, datetime.now(UTC).isoformat()
        )
    return IngestResult(partition, wanted, summary, gap, False, time.monotonic() - started, swept)


def _apply(reader: StreamReader, ingest: Ingest) -> None:
    """Hand the reader's batches to an applier thread; raise the first error of either."""
    applier = _Applier(ingest)
    applier.start()
    try:
        for batch in reader.batches():
            if not applier.offer(batch):
                break  # the applier failed: stop reading (the reader is killed on close)
    finally:
        applier.inbox.put(None)
        applier.join()
    if applier.error is not None:
        raise applier.error
