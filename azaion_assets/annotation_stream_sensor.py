"""``annotation_stream_sensor``: turns new stream offsets into ``annotations`` partitions and runs.

A tick reads no payloads. It probes the stream's tail (a subscription at LAST delivers one chunk,
about 0.2 s), tiles the new offsets into ranges of at most STREAM_BATCH_MESSAGES, and returns
the new dynamic partitions, one run request per partition and the new cursor in a single
``SensorResult``, so the cursor moves only together with the requests it covers. Each run key is
its partition key: a request that was already made is never made twice.

The cursor is the next offset to cover. If the broker cannot be reached, the tick skips with the
reason and the cursor stays. Retention that truncates the stream below the cursor is noticed by
the run that reads the range, which reports the gap and moves on.
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

from azaion_assets.annotations import INGEST_TAGS, annotations
from azaion_assets.core.offsets import plan_ranges
from azaion_assets.core.settings import ConfigError
from azaion_assets.core.stream import StreamError, StreamTarget, probe_head, probe_tail
from azaion_assets.partitions import ANNOTATION_BATCHES, annotation_batches
from azaion_assets.resources import AzaionSettingsResource

SENSOR_NAME = "annotation_stream_sensor"


def read_cursor(cursor: str | None, start: int) -> int:
    """The next offset to cover; ``start`` on a fresh instance."""
    return int(json.loads(cursor)["next_offset"]) if cursor else start


def build_annotation_stream_sensor(interval_seconds: int) -> SensorDefinition:
    @sensor(
        name=SENSOR_NAME,
        target=[annotations],
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=__doc__,
    )
    def annotation_stream_sensor(
        context: SensorEvaluationContext, settings: AzaionSettingsResource
    ) -> SensorResult | SkipReason:
        try:
            config = settings.load()
            target = StreamTarget.from_settings(config)
        except ConfigError as exc:
            return SkipReason(f"configuration: {exc}")
        next_offset = read_cursor(context.cursor, config.stream_start_offset)
        try:
            tail = asyncio.run(probe_tail(target))
            if tail is not None and context.cursor is None:
                # A fresh instance starts at the stream's head, not at offsets retention
                # removed long ago (which would only make runs that report a gap).
                head = asyncio.run(probe_head(target))
                next_offset = max(next_offset, head if head is not None else 0)
        except StreamError as exc:
            return SkipReason(f"broker unreachable, cursor kept at {next_offset}: {exc}")
        if tail is None:
            return SkipReason(f"stream {target.stream} is empty or does not exist yet")
        if tail + 1 < next_offset:
            return SkipReason(
                f"the stream's tail {tail} is behind the cursor {next_offset}: was the stream "
                "recreated? Reset this sensor's cursor to read it from the start"
            )
        if tail < next_offset:
            return SkipReason(f"no new offsets (tail {tail}, next {next_offset})")
        ranges = plan_ranges(
            next_offset, tail, config.stream_batch_messages, config.stream_sensor_max_partitions
        )
        keys = [r.key for r in ranges]
        known = set(context.instance.get_dynamic_partitions(ANNOTATION_BATCHES))
        new_keys = [k for k in keys if k not in known]
        context.log.info(
            f"tail {tail}: {len(keys)} partitions {keys[0]} .. {keys[-1]}"
            + (f"; backlog continues from {ranges[-1].last + 1}" if ranges[-1].last < tail else "")
        )
        return SensorResult(
            run_requests=[RunRequest(run_key=k, partition_key=k, tags=INGEST_TAGS) for k in keys],
            dynamic_partitions_requests=(
                [annotation_batches.build_add_request(new_keys)] if new_keys else []
            ),
            cursor=json.dumps({"next_offset": ranges[-1].last + 1, "tail_seen": tail}),
        )

    return annotation_stream_sensor
