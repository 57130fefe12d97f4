"""The root of the graph: annotation events from the Azaion stream, applied to the data tree.

Each partition is a fixed block of stream offsets (``annotation_stream_sensor`` adds them) that
fills as annotators work. A run applies the offsets named by its ``azaion/offsets`` tag, the
*segment* of each partition it covers, and materialises each partition again with what that
segment applied: an open block is materialised once per run while it fills. A run launched by
hand, with no tag, applies its partitions from their first unapplied offset to the stream's tail.

Applying goes through ``lib.ingest``: idempotently, in any order relative to other segments
(later events still win), every file written atomically, and bad messages quarantined without
stopping the batch. Broker trouble is transient, so the step retries with exponential backoff;
a configuration problem is not, so it fails once and says which. A run over several partitions
(``BackfillPolicy.single_run``) reads them over one connection.
"""

import asyncio
from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    AssetRecordsFilter,
    BackfillPolicy,
    Backoff,
    Failure,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    TableColumn,
    TableSchema,
    asset,
)

from azaion_assets.defs.annotations.arrivals import (
    Drawing,
    arrivals_events,
    count_table,
    today,
)
from azaion_assets.defs.instance_facts import (
    LEFT_DATA_NAMES,
    VALIDATED,
    VALIDATED_NAMES,
    recorded_segment,
)
from azaion_assets.defs.partitions import annotation_batches
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.ingest.day_totals import validated_count
from azaion_assets.lib.ingest.partition_run import (
    IngestResult,
    ingest_partitions,
    resume_segments,
)
from azaion_assets.lib.ingest.summary import BULK_ROLE
from azaion_assets.lib.labels.classes import load_classes, slot_names
from azaion_assets.lib.stream.client import probe_tail
from azaion_assets.lib.stream.limits import message_limits
from azaion_assets.lib.stream.offsets import OffsetRange, segment_of
from azaion_assets.lib.stream.stream_connection import StreamTarget
from azaion_assets.lib.text import plural

INGEST_TAGS = {"azaion/stage": "ingest"}
# The offsets a run applies, an OffsetRange key: set by the stream sensor on every run it asks for.
OFFSETS_TAG = "azaion/offsets"
# A partition is materialised once a run while its block fills: at most once an offset, and in a
# working day's trickle a few times. A re-execution is of a recent run: the newest 1000 suffice.
_SEGMENTS_PER_PARTITION = 1000
# Both tables count the messages that decoded; the quarantined ones are in "quarantined" only.
_EVENTS_SCHEMA = TableSchema(
    columns=[
        TableColumn("what", "string", description="status; quarantined messages are not here"),
        TableColumn("count", "int"),
    ]
)
_ROLES_SCHEMA = TableSchema(
    columns=[
        TableColumn(
            "what",
            "string",
            description=f"the author's role; bulk Validated/Deleted send none: {BULK_ROLE}",
        ),
        TableColumn("count", "int"),
    ]
)


@asset(
    partitions_def=annotation_batches,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="annotations",
    kinds={"rabbitmq"},
    op_tags=INGEST_TAGS,
    retry_policy=RetryPolicy(
        max_retries=5, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
    ),
    description=(
        "Annotation events from the RabbitMQ stream, applied to the data tree (data/, "
        "data-seed/, data_deleted/). Each partition is a fixed block of stream offsets, "
        "materialised again by each run while it fills; each materialisation counts only the "
        "segment it applied (range_first..range_last). Its events and roles tables count the "
        "messages that decoded (quarantined ones only under quarantined); bulk "
        f"Validated/Deleted messages send no role: {BULK_ROLE}."
    ),
)
def annotations(
    context: AssetExecutionContext, azaion_settings: AzaionSettingsResource
) -> Iterator[MaterializeResult | AssetMaterialization]:
    try:
        settings = azaion_settings.load(Scope.STREAM)
        target = StreamTarget.from_settings(settings)
        keys = list(context.partition_keys)
        tree = azaion_settings.tree()
        segments = _segments(context, target, tree, keys)
    except (ConfigError, ValueError) as exc:
        raise Failure(str(exc), allow_retries=False) from None
    names = slot_names(load_classes(tree.classes_file))
    started_on = today()
    results = ingest_partitions(
        target,
        tree,
        keys,
        max_bytes=settings.stream_max_message_bytes,
        idle_timeout=settings.stream_read_timeout_seconds,
        log=context.log.info,
        message_limits=message_limits(settings),
        segments=segments,
    )
    for result in results:
        s = result.summary
        context.log.info(
            f"{result.partition} {result.range.key}: {plural(s['messages'], 'message')}, "
            f"{s['applied']} applied, {s['already_applied']} already applied, "
            f"{s['quarantined']} quarantined"
        )
        counted = not result.reused or not _materialised_before(context, result)
        context.add_asset_metadata(
            _metadata(result, names, counted), partition_key=result.partition
        )
    yield MaterializeResult()
    # After this run's partitions, so the day's totals are newer than what they sum (and the
    # UI does not call them unsynced).
    every = settings.pictures_every_minutes * 60
    drawing = Drawing(context.run_id, settings, every_seconds=every)
    yield from arrivals_events(tree, names, [started_on, today()], context.instance, drawing)


def _segments(
    context: AssetExecutionContext, target: StreamTarget, tree: DataTree, keys: list[str]
) -> dict[str, OffsetRange]:
    """The segment of each partition this run applies: within the offsets of its tag, or for a
    run launched by hand (no tag) from each partition's first unapplied offset to the tail."""
    tagged = context.run.tags.get(OFFSETS_TAG)
    if tagged:
        offsets = OffsetRange.parse(tagged)
        return {key: segment_of(OffsetRange.parse(key), offsets) for key in keys}
    for key in keys:
        OffsetRange.parse(key)
    tail = asyncio.run(probe_tail(target))
    segments = resume_segments(tree, keys, tail if tail is not None else -1)
    applying = ", ".join(f"{k}: {s.key}" for k, s in segments.items())
    context.log.info(f"no {OFFSETS_TAG} tag (launched by hand): {applying}")
    return segments


def _materialised_before(context: AssetExecutionContext, result: IngestResult) -> bool:
    """Whether a materialisation already recorded this segment (a re-execution of a run that
    succeeded), so its validated annotations are not counted twice; a segment applied by a run
    that failed before materialising it has none."""
    page = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[result.partition]),
        limit=_SEGMENTS_PER_PARTITION,
    )
    return any(recorded_segment(record) == result.range for record in page.records)


def _names(summary: dict, counted: bool) -> dict:
    """The names entries; none for a summary stored before they were kept (the sensors then
    count its ``validated`` events instead)."""
    if "into_data" not in summary:
        return {}
    into, out = (summary["into_data"], summary["out_of_data"]) if counted else ([], [])
    return {
        VALIDATED_NAMES: MetadataValue.json(into),
        LEFT_DATA_NAMES: MetadataValue.json(out),
        "unchanged_resends": summary.get("unchanged", 0),
    }


def _metadata(result: IngestResult, names: dict[int, str], counted: bool) -> dict:
    """``counted``: the validated annotations count for the retraining policy, unless an
    earlier materialisation of this partition counted them (a re-run applies nothing new)."""
    s = result.summary
    seconds = max(result.seconds, 1e-9)
    classes = {names.get(int(k), f"Class-{k}"): v for k, v in s["boxes"].items()}
    return {
        "range_first": result.range.first,
        "range_last": result.range.last,
        "first_offset": s["first_offset"],
        "last_offset": s["last_offset"],
        "messages": s["messages"],
        "bytes": s["bytes"],
        "events": count_table(s["events"], _EVENTS_SCHEMA),
        "roles": count_table(s["roles"], _ROLES_SCHEMA),
        "boxes_by_class": count_table(classes),
        "applied": s["applied"],
        VALIDATED: validated_count(s) if counted else 0,
        **_names(s, counted),
        "already_applied": s["already_applied"],
        "written": MetadataValue.json(s["written"]),
        "moved": MetadataValue.json(s["moved"]),
        "quarantined": s["quarantined"],
        "quarantine_reasons": MetadataValue.json(s["quarantine_reasons"]),
        "unknown_names": s["unknown_names"],
        "unknown_sample": MetadataValue.json(s["unknown_sample"]),
        "unknown_resolved": s.get("unknown_resolved", 0),
        "leniency_notes": MetadataValue.json(s["notes"]),
        "gap": (
            f"offsets {result.gap.first}..{result.gap.last} removed by retention before read"
            if result.gap
            else "none"
        ),
        "reused_earlier_run": result.reused,
        "seconds": round(result.seconds, 3),
        "messages_per_s": round(s["messages"] / seconds, 1) if not result.reused else 0.0,
    }
