"""A year's Dagster instance, filled from real runs: what running the pipeline for a year would
leave in it, without running it for a year.

Templates are runs the project really made on a real instance (a trickle's ingest runs, the
demo's retraining and release runs): each run's record and every event it wrote, as Dagster
serialised them. The fill copies them day by day at the stated rhythm, with new run ids, times
shifted to the day, and the ingest partitions, offsets and segment bounds moved along the
stream, and writes the rows with Dagster's own tables in bulk (``dagster._core`` storage: a
benchmark may lean on internals the package may not). On SQLite the per-run event shards are
not written (nothing timed here reads them): their bytes are the measured mean per run times the
runs. Ticks are copied the same way, as many as the shipped retention keeps.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dagster import DagsterInstance, DagsterRun
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.storage.dagster_run import RunsFilter
from dagster._core.storage.event_log.schema import AssetEventTagsTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.schema import RunsTable, RunTagsTable
from dagster._core.storage.schedules.schema import JobTickTable

_INDEXED = {t.value for t in (*ASSET_EVENTS, *ASSET_CHECK_EVENTS)} | {
    "PIPELINE_ENQUEUED",
    "PIPELINE_STARTING",
    "PIPELINE_START",
    "PIPELINE_SUCCESS",
    "PIPELINE_FAILURE",
    "PIPELINE_CANCELING",
    "PIPELINE_CANCELED",
}  # what SQLite mirrors into its index shard (asset, check and run-status events)
_TIMESTAMP = re.compile(r'("timestamp": )(\d+\.\d+)')
_SEGMENT = re.compile(  # an ingest materialisation's offsets, as Dagster serialises metadata
    r'("IntMetadataEntryData", "value": )(\d+)'
    r'(\}, "label": "(?:range_first|range_last|first_offset|last_offset)")'
)


@dataclass
class Template:
    """One real run: its runs-table row, tags, events (as rows) and the asset tags of each."""

    kind: str
    run_id: str
    started: float
    row: dict[str, Any]
    tags: dict[str, str]
    events: list[dict[str, Any]]
    asset_tags: list[dict[str, str]]  # per event; empty for most
    day: str | None = None  # the run's day (its daily partition, else its date), moved with it
    first_offset: int = 0  # an ingest run's first offset, moved along the stream


def templates(instance: DagsterInstance, kind: str, filters: RunsFilter) -> list[Template]:
    """The finished runs of ``instance`` that ``filters`` selects, oldest first."""
    storage = instance.event_log_storage
    out = []
    for record in reversed(instance.get_run_records(filters)):
        run = record.dagster_run
        row = instance.run_storage._get_run_insertion_values(run)  # type: ignore[attr-defined]
        row.update(start_time=record.start_time, end_time=record.end_time)
        logs = instance.all_logs(run.run_id)
        rows = [storage._event_to_row(e) for e in logs]  # type: ignore[attr-defined]
        tags = [dict(storage._tags_for_asset_event(e)) for e in logs]  # type: ignore[attr-defined]
        offsets = run.tags.get("azaion/offsets", "0-0")
        out.append(
            Template(
                kind,
                run.run_id,
                record.start_time or record.create_timestamp.timestamp(),
                row,
                dict(run.tags),
                rows,
                tags,
                _day_of(run.tags.get("dagster/partition"), record.create_timestamp),
                int(offsets.split("-")[0]),
            )
        )
    return out


def _text_entry(label: str) -> re.Pattern:
    """A ``TextMetadataEntryData`` labelled ``label``, as the event log serialises it."""
    return re.compile(
        r'("__class__": "TextMetadataEntryData", "text": ")[^"]*("\}, "label": "'
        + re.escape(label)
        + '")'
    )


def _day_of(partition: str | None, created: datetime) -> str:
    """A daily partition's day, else the day the run was made (what its daily_arrivals names)."""
    if partition and re.fullmatch(r"\d{4}-\d{2}-\d{2}", partition):
        return partition
    return created.astimezone(UTC).date().isoformat()


def copy_snapshots(source: DagsterInstance, target: DagsterInstance, runs: Sequence[DagsterRun]):
    for run in runs:
        if run.job_snapshot_id and not target.run_storage.has_job_snapshot(run.job_snapshot_id):
            target.run_storage.add_job_snapshot(source.get_job_snapshot(run.job_snapshot_id))
        plan = run.execution_plan_snapshot_id
        if plan and not target.run_storage.has_execution_plan_snapshot(plan):
            target.run_storage.add_execution_plan_snapshot(source.get_execution_plan_snapshot(plan))


@dataclass(frozen=True)
class Copy:
    """Where one copy of a template lands: its time, its day, and (ingest) its offsets."""

    template: Template
    at: float
    day: str | None = None
    first_offset: int | None = None
    partitions: dict[str, str] | None = None  # template partition key -> the copy's
    without: str | None = None  # an asset whose materialisation this copy did not make
    names: tuple[str, str] | None = None  # (template's name prefix, the copy's): new annotations
    texts: dict[str, str] | None = None  # text metadata entries by label: the copy's values


class Filler:
    """Bulk writer of copies into ``instance``'s own tables, ``flush`` every few thousand."""

    def __init__(self, instance: DagsterInstance):
        self.instance = instance
        self.sqlite = isinstance(instance.event_log_storage, SqliteEventLogStorage)
        self.runs: list[dict] = []
        self.run_tags: list[dict] = []
        self.events: list[tuple[dict, dict[str, str]]] = []
        self.counts = {"runs": 0, "events": 0}

    def add(self, copy: Copy) -> None:
        t = copy.template
        run_id = str(uuid.uuid4())
        shift = copy.at - t.started
        subs = [(t.run_id, run_id)]
        if copy.day and t.day:
            subs.append((t.day, copy.day))
        if copy.partitions:
            subs += list(copy.partitions.items())
        if copy.names:
            subs.append(copy.names)
        offset_shift = (copy.first_offset - t.first_offset) if copy.first_offset is not None else 0
        if offset_shift and "azaion/offsets" in t.tags:
            first, last = (int(x) for x in t.tags["azaion/offsets"].split("-"))
            moved_range = f"{first + offset_shift:012d}-{last + offset_shift:012d}"
            subs.append((t.tags["azaion/offsets"], moved_range))

        def moved(text: str) -> str:
            for old, new in subs:
                text = text.replace(old, new)
            text = _TIMESTAMP.sub(lambda m: f"{m.group(1)}{float(m.group(2)) + shift}", text)
            if offset_shift:
                text = _SEGMENT.sub(
                    lambda m: f"{m.group(1)}{int(m.group(2)) + offset_shift}{m.group(3)}", text
                )
            for label, value in (copy.texts or {}).items():
                text = _text_entry(label).sub(rf"\g<1>{value}\g<2>", text)
            return text

        row: dict[str, Any] = dict(t.row, run_id=run_id, run_body=moved(t.row["run_body"]))
        row["partition"] = moved(t.row["partition"]) if t.row.get("partition") else None
        when = datetime.fromtimestamp(copy.at, UTC).replace(tzinfo=None)
        row.update(create_timestamp=when, update_timestamp=when)
        for key in ("start_time", "end_time"):
            row[key] = (t.row[key] + shift) if t.row.get(key) else None
        self.runs.append(row)
        tags = {k: moved(v) for k, v in t.tags.items()}
        self.run_tags += [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()]
        for event, asset_tags in zip(t.events, t.asset_tags, strict=True):
            if self.sqlite and event["dagster_event_type"] not in _INDEXED:
                continue
            if (
                copy.without
                and event["asset_key"] == copy.without
                and event["dagster_event_type"] == "ASSET_MATERIALIZATION"
            ):
                continue
            copied: dict[str, Any] = dict(event, run_id=run_id, event=moved(event["event"]))
            if event["timestamp"] is not None:
                copied["timestamp"] = datetime.fromtimestamp(
                    event["timestamp"].replace(tzinfo=UTC).timestamp() + shift, UTC
                ).replace(tzinfo=None)
            if event["partition"]:
                copied["partition"] = moved(event["partition"])
            self.events.append((copied, asset_tags))
        self.counts["runs"] += 1
        self.counts["events"] += len(t.events)

    def flush(self) -> None:
        if not self.runs:
            return
        with self.instance.run_storage.connect() as conn:  # type: ignore[attr-defined]
            conn.execute(RunsTable.insert(), self.runs)
            conn.execute(RunTagsTable.insert(), self.run_tags)
        storage = self.instance.event_log_storage
        with storage.index_connection() as conn:  # type: ignore[attr-defined]
            rows = [e for e, _ in self.events]
            ids = [
                r[0]
                for r in conn.execute(
                    SqlEventLogStorageTable.insert().returning(SqlEventLogStorageTable.c.id),
                    rows,
                )
            ]
            tags = [
                {
                    "event_id": event_id,
                    "asset_key": e["asset_key"],
                    "key": k,
                    "value": v,
                    "event_timestamp": e["timestamp"],
                }
                for event_id, (e, asset_tags) in zip(ids, self.events, strict=True)
                for k, v in asset_tags.items()
            ]
            if tags:
                conn.execute(AssetEventTagsTable.insert(), tags)
        self.runs, self.run_tags, self.events = [], [], []


def index_assets(instance: DagsterInstance) -> int:
    """The asset index as storing each event keeps it (the bulk copies skip it): every asset's
    row with its latest events, where the UI and the status cache read them. Returns the
    assets indexed."""
    import sqlalchemy as db
    from dagster import AssetKey, EventRecordsFilter
    from dagster._core.events import DagsterEventType

    storage = instance.event_log_storage
    table = SqlEventLogStorageTable
    with storage.index_connection() as conn:  # type: ignore[attr-defined]
        query = db.select(table.c.asset_key).where(table.c.asset_key.isnot(None)).distinct()
        keys = [AssetKey.from_db_string(row[0]) for row in conn.execute(query)]
    planned = DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    for key in keys:
        if key is None:
            continue
        latest = [
            *instance.get_event_records(EventRecordsFilter(planned, asset_key=key), limit=1),
            *instance.fetch_observations(key, limit=1).records,
            *instance.fetch_materializations(key, limit=1).records,
        ]
        for record in sorted(latest, key=lambda r: r.storage_id):
            storage.store_asset_event(record.event_log_entry, record.storage_id)  # type: ignore[attr-defined]
    return len(keys)


def tick_templates(instance: DagsterInstance) -> dict[str, list[dict]]:
    """Every tick row of ``instance`` by status, as stored."""
    with instance.schedule_storage.connect() as conn:  # type: ignore[union-attr]
        rows = conn.execute(JobTickTable.select()).mappings().all()
    by_status: dict[str, list[dict]] = {}
    for row in rows:
        by_status.setdefault(row["status"], []).append({k: row[k] for k in row if k != "id"})
    return by_status


def copy_ticks(instance: DagsterInstance, rows: Iterator[dict], batch: int = 20_000) -> int:
    count, buffer = 0, []
    for row in rows:
        buffer.append(row)
        if len(buffer) >= batch:
            count += _write_ticks(instance, buffer)
            buffer = []
    return count + (_write_ticks(instance, buffer) if buffer else 0)


def _write_ticks(instance: DagsterInstance, rows: list[dict]) -> int:
    with instance.schedule_storage.connect() as conn:  # type: ignore[union-attr]
        conn.execute(JobTickTable.insert(), rows)
    return len(rows)


def shifted_tick(row: dict, at: float) -> dict:
    when = datetime.fromtimestamp(at, UTC).replace(tzinfo=None)
    body = _TIMESTAMP.sub(lambda m: f"{m.group(1)}{at}", row["tick_body"])
    return dict(row, timestamp=when, create_timestamp=when, update_timestamp=when, tick_body=body)
