"""``daily_arrivals``: what the stream brought each day, for the operator's "what arrived today".

The annotation partitions are blocks of stream offsets, filled by the stream's pace, not by the
calendar; this sums the ingest summaries of the segments (what one ingest run applied of a
partition) applied on a day (``day_totals``). Each ingest run re-materialises today's partition
as it ends, so the page is current within one run; the asset's own step rebuilds any day on
request from the same records.

Its pictures (the day's newest annotations, and its quarantined images that can be shown, with
their reasons) are drawn by the asset's own step every time, but by an ingest run only when the
last drawing is PICTURES_EVERY_MINUTES old: a run carries the figures every minute of
a working day, and pictures on each would grow the instance by megabytes a day. In between, a
materialisation names the run whose materialisation holds them.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    DagsterInstance,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from azaion_assets.defs.pictures import carried, drawn_marks, picture_entry
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.ingest.apply_events import state_path
from azaion_assets.lib.ingest.arrival_sheet import arrival_pictures
from azaion_assets.lib.ingest.day_totals import DayTotals, day_totals
from azaion_assets.lib.ingest.ingest_state import IngestState
from azaion_assets.lib.labels.classes import load_classes, slot_list, slot_names
from azaion_assets.lib.text import plural

DAILY_ARRIVALS = AssetKey("daily_arrivals")
_LISTED = 30  # segments named one by one; the rest are counted
COUNT_SCHEMA = TableSchema(columns=[TableColumn("what", "string"), TableColumn("count", "int")])


@dataclass(frozen=True)
class Drawing:
    """Who draws a day's pictures, with which settings, and whether only when they are due
    (``every_seconds``; None draws now)."""

    run_id: str
    settings: Settings
    every_seconds: float | None = None


def count_table(counts: dict[str, int], schema: TableSchema = COUNT_SCHEMA) -> MetadataValue:
    """A what/count table, as both annotation assets show their counts."""
    rows = [TableRecord({"what": k, "count": int(v)}) for k, v in counts.items()]
    return MetadataValue.table(rows, schema=schema)


def daily_arrivals(context: AssetExecutionContext, azaion_settings: AzaionSettingsResource):
    settings = azaion_settings.load()
    tree = azaion_settings.tree()
    day = date.fromisoformat(context.partition_key)
    names = slot_names(load_classes(tree.classes_file))
    drawing = Drawing(context.run_id, settings)
    return MaterializeResult(
        metadata=days_metadata(tree, names, [day], context.instance, drawing)[day]
    )


def build_daily_arrivals(days: DailyPartitionsDefinition) -> AssetsDefinition:
    return asset(
        partitions_def=days,
        deps=[AssetDep("annotations", partition_mapping=AllPartitionMapping())],
        group_name="annotations",
        kinds={"rabbitmq"},
        description=(
            "What the annotation stream brought each day (UTC): messages, validated "
            "annotations, events, roles, boxes by class and weather mode, quarantined with "
            "reasons. Updated by every ingest run; materialise a day to rebuild it."
        ),
    )(daily_arrivals)


def days_metadata(
    tree: DataTree,
    names: dict[int, str],
    days: Iterable[date],
    instance: DagsterInstance,
    drawing: Drawing,
) -> dict[date, dict[str, Any]]:
    """Each day's metadata as the ingest state has it now, the state opened once."""
    out = {}
    with IngestState(state_path(tree)) as state:
        for day in sorted(set(days)):
            totals = day_totals(state, day)
            pictures = _carried(instance, day, drawing) or _drawn(
                tree, state, totals, names, drawing
            )
            out[day] = arrivals_metadata(totals, names) | pictures
    return out


def arrivals_events(
    tree: DataTree,
    names: dict[int, str],
    days: Iterable[date],
    instance: DagsterInstance,
    drawing: Drawing,
) -> list[AssetMaterialization]:
    """Materialisations of ``days`` (an ingest run logs today's, and the day it started on if
    that was yesterday)."""
    return [
        AssetMaterialization(DAILY_ARRIVALS, partition=day.isoformat(), metadata=metadata)
        for day, metadata in days_metadata(tree, names, days, instance, drawing).items()
    ]


def _drawn(
    tree: DataTree, state: IngestState, totals: DayTotals, names: dict[int, str], drawing: Drawing
) -> dict[str, Any]:
    """The day's pictures, drawn now; pictures that cannot be drawn say why, never failing
    the figures."""
    settings = drawing.settings
    if not settings.pictures_budget_bytes:
        return {}
    try:
        shown = arrival_pictures(
            tree,
            state,
            totals.day,
            totals.partitions,
            settings.pictures_gallery_size,
            settings.pictures_thumbnail_width // 2,
            slot_list(names),
        )
    except (OSError, ValueError) as exc:
        return {"pictures": MetadataValue.md(f"*No pictures: {exc}*")}
    header = "Green: the boxes as annotated (for a quarantined message, as it named them)."
    entry = (
        picture_entry([s.picture for s in shown], settings.pictures_budget_bytes, header)
        if shown
        else MetadataValue.md("*Nothing to show: no annotation or quarantined image this day.*")
    )
    return {"pictures": entry, **drawn_marks(drawing.run_id)}


def _carried(instance: DagsterInstance, day: date, drawing: Drawing) -> dict[str, Any] | None:
    if drawing.every_seconds is None:
        return None
    draw_now = "materialise this day to draw them now"
    return carried(
        instance, DAILY_ARRIVALS, day.isoformat(), drawing.every_seconds, "pictures", draw_now
    )


def today() -> date:
    return datetime.now(UTC).date()


def arrivals_metadata(totals: DayTotals, names: dict[int, str]) -> dict[str, Any]:
    classes = {names.get(slot, f"Class-{slot}"): n for slot, n in sorted(totals.boxes.items())}
    return {
        "summary": MetadataValue.md(_summary(totals)),
        "messages": totals.messages,
        "validated": totals.validated,
        "quarantined": totals.quarantined,
        "boxes": sum(totals.boxes.values()),
        "ingest_segments": len(totals.partitions),
        "events": count_table(totals.events),
        "roles": count_table(totals.roles),
        "boxes_by_class": count_table(classes),
        "boxes_by_weather_mode": count_table(totals.boxes_by_mode()),
        "quarantine_reasons": count_table(totals.quarantine_reasons),
        "segments": MetadataValue.md(_partitions(totals.partitions)),
    }


def _summary(t: DayTotals) -> str:
    """One paragraph an operator reads at a glance."""
    if not t.partitions:
        return f"Nothing arrived on {t.day.isoformat()}."
    events = ", ".join(f"{n} {event}" for event, n in t.events.most_common()) or "no events"
    batches = plural(len(t.partitions), "ingest segment")
    lines = [
        f"**{plural(t.messages, 'message')}** in {batches} on {t.day.isoformat()}: {events}.",
        f"**{plural(t.validated, 'validated annotation')}** reached data/ "
        f"({plural(sum(t.boxes.values()), 'box', 'boxes')}).",
    ]
    if t.quarantined:
        reasons = "; ".join(f"{r} ({n})" for r, n in t.quarantine_reasons.most_common(3))
        lines.append(f"**{t.quarantined} quarantined**: {reasons}.")
    else:
        lines.append("Nothing quarantined.")
    return "\n\n".join(lines)


def _partitions(partitions: list[str]) -> str:
    shown = [f"- `{p}`" for p in partitions[:_LISTED]]
    more = len(partitions) - _LISTED
    return "\n".join(shown + ([f"- … and {more} more"] if more > 0 else [])) or "none"
