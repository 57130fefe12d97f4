"""``annotation_stream_sensor``: turns new stream offsets into ``annotations`` partitions and runs.

A tick reads no payloads. It probes the stream's tail (a subscription at LAST delivers one chunk,
about 0.2 s), tiles the new offsets into partitions of at most STREAM_BATCH_MESSAGES, and returns
the new dynamic partitions, one run for all of them (``ingest_job``) and the new cursor in a
single ``SensorResult``, so the cursor moves only together with the request it covers. The run
key names the partitions it covers: a request that was already made is never made twice.

It also requests again, one run each, the partitions whose runs ended without landing them
(``stranded_partitions``), and keeps the ``every_partition_landed`` check up to date.

The cursor is JSON with named fields: the next offset to cover (``next_offset``), the tail the
last tick saw (``tail_seen``) and the partitions given up on (``given_up``). If the broker cannot
be reached, the tick skips with the reason and the cursor stays. Retention that truncates the
stream below the cursor is noticed by the run that reads the range, which reports the gap and
moves on.
"""

import asyncio
import json

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from azaion_assets.defs.annotations.ingest_job import ingest_job, ingest_request
from azaion_assets.defs.annotations.stranded_partitions import find_stranded, landed_evaluation
from azaion_assets.defs.partitions import ANNOTATION_BATCHES, annotation_batches
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.stream.client import probe_head, probe_tail
from azaion_assets.lib.stream.offsets import plan_ranges
from azaion_assets.lib.stream.stream_connection import StreamError, StreamTarget

SENSOR_NAME = "annotation_stream_sensor"
DESCRIPTION = (
    "Watches the RabbitMQ annotation stream and starts an ingest run whenever new annotations "
    "arrive. It also re-runs the batches whose ingest run ended without storing them."
)


def read_cursor(cursor: str | None, start: int) -> int:
    """The next offset to cover; ``start`` on a fresh instance."""
    return int(json.loads(cursor)["next_offset"]) if cursor else start


def _given_up(cursor: str | None) -> list[str]:
    return list(json.loads(cursor).get("given_up", [])) if cursor else []


def _recovery(context: SensorEvaluationContext) -> tuple[list[RunRequest], list, list[str]]:
    """Runs for stranded partitions, the check's new verdict if it changed, the given-up list."""
    stranded = find_stranded(context.instance)
    requests = [ingest_request([key], f"{key}#{n}") for key, n in stranded.retry]
    for key, n in stranded.retry:
        context.log.warning(f"{key} has not landed and no run covers it: request {n}")
    events = []
    if stranded.given_up != _given_up(context.cursor):
        events.append(landed_evaluation(stranded.given_up))
        if stranded.given_up:
            context.log.error(f"partitions given up on: {len(stranded.given_up)}")
    return requests, events, stranded.given_up


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
        context: SensorEvaluationContext, settings: AzaionSettingsResource
    ) -> SensorResult | SkipReason:
        try:
            config = settings.load(Scope.STREAM)
            target = StreamTarget.from_settings(config)
        except ConfigError as exc:
            return SkipReason(f"settings to fix: {exc.summary()}")
        next_offset = read_cursor(context.cursor, config.stream_start_offset)
        retries, events, given_up = _recovery(context)
        try:
            tail = asyncio.run(probe_tail(target))
            if tail is not None and context.cursor is None:
                # A fresh instance starts at the stream's head, not at offsets retention
                # removed long ago (which would only make runs that report a gap).
                head = asyncio.run(probe_head(target))
                next_offset = max(next_offset, head if head is not None else 0)
        except StreamError as exc:
            skip = f"stream unreachable: {exc}; cursor stays at {next_offset}"
            return _only(context, [], events, given_up, skip)  # a run now could only fail
        if tail is None:
            skip = f"stream {target.stream} is empty or does not exist yet"
            return _only(context, retries, events, given_up, skip)
        if tail + 1 < next_offset:
            skip = (
                f"stream tail {tail} is behind cursor {next_offset}: stream recreated? "
                "reset this sensor's cursor"
            )
            return _only(context, retries, events, given_up, skip)
        if tail < next_offset:
            skip = f"no new offsets: stream tail {tail}, next offset {next_offset}"
            return _only(context, retries, events, given_up, skip)
        ranges = plan_ranges(
            next_offset, tail, config.stream_batch_messages, config.stream_sensor_max_partitions
        )
        keys = [r.key for r in ranges]
        known = set(context.instance.get_dynamic_partitions(ANNOTATION_BATCHES))
        new_keys = [k for k in keys if k not in known]
        context.log.info(
            f"tail {tail}: partitions {keys[0]} .. {keys[-1]} ({len(keys)})"
            + (f"; backlog continues from {ranges[-1].last + 1}" if ranges[-1].last < tail else "")
        )
        run_key = keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}"
        return SensorResult(
            run_requests=[*retries, ingest_request(keys, run_key)],
            dynamic_partitions_requests=(
                [annotation_batches.build_add_request(new_keys)] if new_keys else []
            ),
            asset_events=events,
            cursor=_cursor(ranges[-1].last + 1, tail, given_up),
        )

    return annotation_stream_sensor


def _cursor(next_offset: int, tail: int | None, given_up: list[str]) -> str:
    return json.dumps({"next_offset": next_offset, "tail_seen": tail, "given_up": given_up})


def _only(
    context: SensorEvaluationContext,
    retries: list[RunRequest],
    events: list,
    given_up: list[str],
    skip: str,
) -> SensorResult | SkipReason:
    """No new offsets: the stranded partitions' runs and the check, if any, else ``skip``."""
    if not retries and not events:
        return SkipReason(skip)
    context.log.info(skip)
    previous = json.loads(context.cursor) if context.cursor else {}
    next_offset = previous.get("next_offset")
    if next_offset is None:  # nothing covered yet: nothing can be stranded
        return SkipReason(skip)
    cursor = _cursor(next_offset, previous.get("tail_seen"), given_up)
    return SensorResult(run_requests=retries, asset_events=events, cursor=cursor)
