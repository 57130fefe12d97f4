"""The root of the graph: annotation events from the Azaion stream, applied to the data tree.

Each partition is an offset range of the stream (``annotation_stream_sensor`` adds them). A run
reads its partitions and applies them with ``core.ingest``: idempotently, in any order relative
to other partitions (later events still win), every file written atomically, and bad messages
quarantined without stopping the batch. Broker trouble is transient, so the step retries with
exponential backoff; a configuration problem is not, so it fails once and says which.

A backlog is one run over a range of partitions (``BackfillPolicy.single_run``), read over one
connection: each run pays a process start and a stream connection, which cost more than
applying a partition. Each partition still gets its own materialisation and metadata.
"""

from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
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

from azaion_assets.defs.annotations.arrivals import arrivals_events, count_table, today
from azaion_assets.defs.partitions import annotation_batches
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.dataset.classes import load_classes, slot_names
from azaion_assets.lib.ingest.day_totals import validated_count
from azaion_assets.lib.ingest.partition_run import IngestResult, ingest_partitions
from azaion_assets.lib.ingest.summary import BULK_ROLE
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets.lib.stream.stream_connection import StreamTarget
from azaion_assets.lib.text import plural

INGEST_TAGS = {"azaion/stage": "ingest"}
# Validated annotations this partition brought into data/ (new or edited content by a validator,
# or moved from data-seed/ by a bulk Validate), as events; daily_arrivals sums them.
VALIDATED = "validated"
# The same as distinct names, and the names this partition took out of data/ (deleted, or back
# to data-seed/): what the sensors count as changed since a dataset, replayed in order.
VALIDATED_NAMES = "validated_names"
LEFT_DATA_NAMES = "left_data_names"
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
        "data-seed/, data_deleted/). Each partition is an offset range of the stream. Its events "
        "and roles tables count the messages that decoded (quarantined ones only under "
        f"quarantined); bulk Validated/Deleted messages send no role: {BULK_ROLE}."
    ),
)
def annotations(
    context: AssetExecutionContext, settings: AzaionSettingsResource
) -> Iterator[MaterializeResult | AssetMaterialization]:
    try:
        config = settings.load(Scope.STREAM)
        target = StreamTarget.from_settings(config)
        keys = list(context.partition_keys)
        for key in keys:
            OffsetRange.parse(key)
    except (ConfigError, ValueError) as exc:
        raise Failure(str(exc), allow_retries=False) from None
    tree = settings.tree()
    names = slot_names(load_classes(tree.classes_file))
    started_on = today()
    results = ingest_partitions(
        target,
        tree,
        keys,
        max_bytes=config.stream_max_message_bytes,
        idle_timeout=config.stream_read_timeout_seconds,
        log=context.log.info,
        message_limits=config.message_limits,
    )
    landed: set[str] | None = None  # partitions materialised before: read only if needed
    for result in results:
        s = result.summary
        context.log.info(
            f"{result.partition}: {plural(s['messages'], 'message')}, {s['applied']} applied, "
            f"{s['already_applied']} already applied, {s['quarantined']} quarantined"
        )
        if result.reused and landed is None:
            landed = context.instance.get_materialized_partitions(context.asset_key)
        counted = not result.reused or result.partition not in (landed or set())
        context.add_asset_metadata(
            _metadata(result, names, counted), partition_key=result.partition
        )
    yield MaterializeResult()
    # After this run's partitions, so the day's totals are newer than what they sum (and the
    # UI does not call them unsynced).
    yield from arrivals_events(tree, names, [started_on, today()])


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
