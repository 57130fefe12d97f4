"""``annotation_stream_sensor``: asks for an ingest run when the stream's new offsets warrant one.

Production is a trickle all day: a run per tick would cost a run, a partition and some 3
CPU-seconds for a handful of messages (``bench/trickle.py``). So a tick requests a run only when
the pending offsets fill a batch (``STREAM_BATCH_MESSAGES``) or the oldest would have waited
``STREAM_MAX_DELAY_SECONDS`` by the next tick, and otherwise skips saying what it waits for.
While an ingest run is queued or running it requests none: the first tick after that run ends
takes everything pending in one run, so no queue builds up behind a training or an outage.

A tick reads no payloads: it probes the stream's tail (one chunk, about 0.2 s). A run applies
the offsets from the cursor to the tail to the partitions that hold them, fixed blocks of
``STREAM_BATCH_MESSAGES`` offsets (``plan_blocks``): the open block is materialised again by
each run while it fills. The new partitions, the run and the new cursor go in one
``SensorResult``, so the cursor moves only together with the request it covers; the run key is
the offsets, so a request is never made twice.

Offsets whose run ended without landing them (``stranded_partitions``) are requested again
first, with the same offsets; the ``every_partition_landed`` check is kept up to date.

The cursor is JSON with named fields: the next offset to request (``next_offset``), the tail the
last tick saw (``tail_seen``), the newest partition (``open_block``), since when the oldest
pending offset has waited (``pending_since``, epoch seconds: the end of the tick before the one
that first saw it) and the offsets given up on (``given_up``). If the broker cannot be reached,
the tick skips with the reason and the cursor stays.
"""

import asyncio
import json
import time

from dagster import (
    DagsterRun,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from azaion_assets.defs.annotations.ingest_job import ingest_job, ingest_request
from azaion_assets.defs.annotations.stranded_partitions import (
    find_stranded,
    ingest_in_flight,
    landed_evaluation,
)
from azaion_assets.defs.partitions import annotation_batches
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.stream.client import probe_head, probe_tail
from azaion_assets.lib.stream.offsets import OffsetRange, plan_blocks
from azaion_assets.lib.stream.stream_connection import StreamError, StreamTarget

SENSOR_NAME = "annotation_stream_sensor"
DESCRIPTION = (
    "Watches the RabbitMQ annotation stream and starts an ingest run once a batch of new "
    "annotations is pending or the oldest has waited long enough, one run at a time. It also "
    "re-runs the offsets whose ingest run ended without storing them."
)


def read_cursor(cursor: str | None, start: int) -> int:
    """The next offset to cover; ``start`` on a fresh instance."""
    return int(json.loads(cursor)["next_offset"]) if cursor else start


def build_annotation_stream_sensor(interval_seconds: int) -> SensorDefinition:
    @sensor(
        name=SENSOR_NAME,
        job=ingest_job,
        # The daemon evaluates sensors on a 5 s loop and skips a sensor whose last tick is
        # younger than this: at exactly the interval, a tick a few ms late skips a whole loop
        # (a 5 s interval became 10 s one tick in three). A second of slack keeps the cadence.
        minimum_interval_seconds=max(1, interval_seconds - 1),
        default_status=DefaultSensorStatus.RUNNING,
        description=DESCRIPTION,
    )
    def annotation_stream_sensor(
        context: SensorEvaluationContext, azaion_settings: AzaionSettingsResource
    ) -> SensorResult | SkipReason:
        try:
            settings = azaion_settings.load(Scope.STREAM)
            target = StreamTarget.from_settings(settings)
        except ConfigError as exc:
            return SkipReason(f"settings to fix: {exc.summary()}")
        tick = _Tick(context, read_cursor(context.cursor, settings.stream_start_offset))
        flying = ingest_in_flight(context.instance)
        if flying is None:
            tick.recover()
        try:
            tail = asyncio.run(probe_tail(target))
            if tail is not None and context.cursor is None:
                # A fresh instance starts at the stream's head, not at offsets retention
                # removed long ago (which would only make runs that report a gap).
                head = asyncio.run(probe_head(target))
                tick.next_offset = max(tick.next_offset, head if head is not None else 0)
        except StreamError as exc:
            tick.retries = []  # a run now could only fail
            return tick.skip(f"stream unreachable: {exc}; cursor stays at {tick.next_offset}")
        if tail is None:
            return tick.skip(f"stream {target.stream} is empty or does not exist yet")
        if tail + 1 < tick.next_offset:
            return tick.skip(
                f"stream tail {tail} is behind cursor {tick.next_offset}: stream recreated? "
                "reset this sensor's cursor"
            )
        tick.saw(tail)
        if flying is not None:
            return tick.skip(f"{tick.waiting()}; {_in_flight(flying)}", wait=True)
        if tick.retries:
            return tick.retry()
        if tick.pending == 0:
            return tick.skip(f"no new offsets: stream tail {tail}, next offset {tick.next_offset}")
        # On the last tick before the oldest would have waited the delay, not the first after.
        due = tick.pending >= settings.stream_batch_messages or (
            tick.waited + interval_seconds >= settings.stream_max_delay_seconds
        )
        if not due:
            rule = (
                f"ingest at {settings.stream_batch_messages} messages "
                f"or {settings.stream_max_delay_seconds} s"
            )
            return tick.skip(f"{tick.waiting()}; {rule}", wait=True)
        return tick.request(settings.stream_batch_messages, settings.stream_sensor_max_partitions)

    return annotation_stream_sensor


def _in_flight(run: DagsterRun) -> str:
    status = run.status.value.lower()
    return f"ingest run {run.run_id[:8]} is {status}: the first tick after it requests the next"


class _Tick:
    """One evaluation: the cursor it read, what it found, and the result it returns."""

    def __init__(self, context: SensorEvaluationContext, next_offset: int) -> None:
        self.context = context
        self.previous = json.loads(context.cursor) if context.cursor else {}
        self.next_offset = next_offset
        self.tail: int | None = self.previous.get("tail_seen")
        self.open_block = self.previous.get("open_block")
        self.since: float | None = self.previous.get("pending_since")
        self.given_up: list[str] = list(self.previous.get("given_up", []))
        self.retries: list = []
        self.events: list = []
        self.now = time.time()

    def recover(self) -> None:
        """The stranded offsets to request again, and the check's verdict if it changed."""
        stranded = find_stranded(self.context.instance)
        self.retries = stranded.retry
        if stranded.given_up != self.given_up:
            self.events.append(landed_evaluation(stranded.given_up))
            if stranded.given_up:
                self.context.log.error(f"offset ranges given up on: {len(stranded.given_up)}")
        self.given_up = stranded.given_up

    def saw(self, tail: int) -> None:
        self.tail = tail
        if self.pending == 0:
            self.since = None
        elif self.since is None:
            # The tick before saw none of them: the oldest arrived after it, so its end is when
            # the wait began at the latest (a delay measured from this tick would be up to an
            # interval late).
            self.since = min(self.now, self.context.last_tick_completion_time or self.now)

    @property
    def pending(self) -> int:
        """Offsets beyond the cursor: at most that many messages."""
        return max(0, (self.tail if self.tail is not None else -1) - self.next_offset + 1)

    @property
    def waited(self) -> float:
        return self.now - self.since if self.since is not None else 0.0

    def waiting(self) -> str:
        if self.pending == 0:
            return "no new offsets"
        return f"{self.pending} messages pending for {self.waited:.0f} s"

    def cursor(self) -> str:
        return json.dumps(
            {
                "next_offset": self.next_offset,
                "tail_seen": self.tail,
                "open_block": self.open_block,
                "pending_since": self.since,
                "given_up": self.given_up,
            }
        )

    def skip(self, reason: str, wait: bool = False) -> SensorResult | SkipReason:
        """No request for new offsets: the stranded offsets' run if any, else the reason, with
        the check's verdict and the cursor if they changed. ``wait``: the tick saw the stream,
        so the cursor keeps what it saw (when pending offsets were first seen)."""
        if self.retries:
            return self.retry()
        cursor = self.cursor() if wait else None
        if cursor == self.context.cursor:
            cursor = None
        if cursor is None and not self.events:
            return SkipReason(reason)
        return SensorResult(skip_reason=reason, asset_events=self.events, cursor=cursor)

    def retry(self) -> SensorResult:
        """The oldest stranded offsets, alone: one ingest run at a time."""
        first = self.retries[0]
        self.context.log.warning(
            f"offsets {first.offsets.key} have not landed and no run covers them: "
            f"request {first.attempt}"
        )
        return SensorResult(
            run_requests=[ingest_request(first.keys, first.offsets, first.attempt)],
            asset_events=self.events,
            cursor=self.cursor(),
        )

    def request(self, size: int, max_blocks: int) -> SensorResult:
        assert self.tail is not None
        open_block = OffsetRange.parse(self.open_block) if self.open_block else None
        blocks, through = plan_blocks(self.next_offset, self.tail, size, max_blocks, open_block)
        keys = [b.key for b in blocks]
        new_keys = [b.key for b in blocks if b != open_block]
        offsets = OffsetRange(self.next_offset, through)
        self.context.log.info(
            f"{self.waiting()}: offsets {offsets.key} into partitions {keys[0]} .. {keys[-1]}"
            + (f"; backlog continues from {through + 1}" if through < self.tail else "")
        )
        self.next_offset, self.open_block = through + 1, keys[-1]
        if through >= self.tail:
            self.since = None
        return SensorResult(
            run_requests=[ingest_request(keys, offsets)],
            dynamic_partitions_requests=(
                [annotation_batches.build_add_request(new_keys)] if new_keys else []
            ),
            asset_events=self.events,
            cursor=self.cursor(),
        )
