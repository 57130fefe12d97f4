"""The root of the graph: annotation events from the Azaion stream, applied to the data tree.

Each partition is an offset range of the stream (``annotation_stream_sensor`` adds them). A run
reads exactly its range and applies it with ``core.ingest``: idempotently, in any order relative
to other partitions (later events still win), every file written atomically, and bad messages
quarantined without stopping the batch. Broker trouble is transient, so the step retries with
exponential backoff; a configuration problem is not, so it fails once and says which.
"""

from dagster import (
    AssetExecutionContext,
    Backoff,
    Failure,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from azaion_assets.core.classes import load_classes, slot_names
from azaion_assets.core.ingest_run import IngestResult, ingest_partition
from azaion_assets.core.offsets import OffsetRange
from azaion_assets.core.settings import ConfigError
from azaion_assets.core.stream import StreamTarget
from azaion_assets.partitions import annotation_batches
from azaion_assets.resources import AzaionSettingsResource

INGEST_TAGS = {"azaion/stage": "ingest"}
# Validated annotations this partition brought into data/ (new or edited content by a validator,
# or moved from data-seed/ by a bulk Validate); retraining_sensor sums it.
VALIDATED = "validated"
_COUNT_SCHEMA = TableSchema(columns=[TableColumn("what", "string"), TableColumn("count", "int")])


@asset(
    partitions_def=annotation_batches,
    group_name="annotations",
    kinds={"rabbitmq"},
    op_tags=INGEST_TAGS,
    retry_policy=RetryPolicy(
        max_retries=5, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
    ),
    description=(
        "Annotation events from the RabbitMQ stream, applied to the data tree (data/, "
        "data-seed/, data_deleted/). Each partition is an offset range of the stream."
    ),
)
def annotations(
    context: AssetExecutionContext, settings: AzaionSettingsResource
) -> MaterializeResult:
    try:
        config = settings.load()
        target = StreamTarget.from_settings(config)
        wanted = OffsetRange.parse(context.partition_key)
    except (ConfigError, ValueError) as exc:
        raise Failure(str(exc), allow_retries=False) from None
    tree = settings.tree()
    result = ingest_partition(
        target,
        tree,
        wanted.key,
        max_bytes=config.stream_max_message_bytes,
        idle_timeout=config.stream_read_timeout_seconds,
        log=context.log.info,
    )
    names = slot_names(load_classes(tree.classes_file))
    s = result.summary
    context.log.info(
        f"{wanted.key}: {s['messages']} messages, {s['applied']} applied, "
        f"{s['already_applied']} already applied, {s['quarantined']} quarantined"
    )
    return MaterializeResult(metadata=_metadata(result, names))


def validated_count(summary: dict) -> int:
    return int(summary["written"].get("data", 0)) + int(summary["moved"].get("to data", 0))


def _table(counts: dict[str, int]) -> MetadataValue:
    rows = [TableRecord({"what": k, "count": int(v)}) for k, v in counts.items()]
    return MetadataValue.table(rows, schema=_COUNT_SCHEMA)


def _metadata(result: IngestResult, names: dict[int, str]) -> dict:
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
        "events": _table(s["events"]),
        "roles": _table(s["roles"]),
        "boxes_by_class": _table(classes),
        "applied": s["applied"],
        VALIDATED: 0 if result.reused else validated_count(s),
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
