"""What the stages read about each other, from the Dagster instance: one module, so that no stage
package imports another (import-linter's independence contract).

The names by which stages find each other's records (asset keys, metadata entries, the GPU pool,
the training record's file name) and the facts several stages ask every tick: what has landed,
which annotations changed since a dataset, who is champion, whether a training holds the GPU,
the champion's latest score on new data, whether a promotion was released. Each reads
materialisations and runs only, never the data tree, so sensors stay cheap on a daemon that does
not mount the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DagsterRunStatus,
    EventLogRecord,
    RunsFilter,
)

from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets.lib.training.retrain_policy import STAGE_TAG, TRAIN_STAGE, Watch

ANNOTATIONS = AssetKey("annotations")
DATASET = AssetKey("dataset")
MODEL = AssetKey("model")
CHAMPION = AssetKey("champion")
MONITOR = AssetKey("champion_monitor")
RELEASE = AssetKey("model_release")

GPU_POOL = "gpu"  # dagster.yaml limits it: one training step at a time, whoever launched it
TRAINING_RECORD = "training.json"  # beside a model's weights: what ``model`` trained, and how

# ``annotations`` entries. Validated annotations a segment brought into data/ (new or edited
# content by a validator, or moved from data-seed/ by a bulk Validate), as events; daily_arrivals
# sums them. The same as distinct names, and the names it took out of data/ (deleted, or back to
# data-seed/): what the sensors count as changed since a dataset, replayed in order.
VALIDATED = "validated"
VALIDATED_NAMES = "validated_names"
LEFT_DATA_NAMES = "left_data_names"
# ``champion_monitor`` entries that retraining_sensor reads.
CHAMPION_ENTRY = "champion"
NEW_SCORE = "new_data_mAP50-95"
TEST_SCORE = "champion_test_mAP50-95"
NEW_IMAGES = "new_images"

ACTIVE = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
_PAGE = 1000
_SLACK = 3600.0  # seconds: events of one moment may be recorded slightly out of order
# More than one run's materialisations: a run records its partitions' in no particular order.
_NEWEST = 500


def value_of(record: EventLogRecord, key: str) -> Any:
    """A materialisation's metadata entry, as its plain value; None when absent."""
    materialization = record.asset_materialization
    entry = materialization.metadata.get(key) if materialization else None
    return entry.value if entry is not None else None


def recorded_segment(record: EventLogRecord) -> OffsetRange | None:
    """The offsets a materialisation of ``annotations`` applied (``range_first``..
    ``range_last``: its whole partition, before segments); its partition's range where the
    metadata has none; None for neither."""
    first, last = value_of(record, "range_first"), value_of(record, "range_last")
    if isinstance(first, int) and isinstance(last, int):
        return OffsetRange(first, last)
    key = record.partition_key
    return OffsetRange.parse(key) if key is not None else None


def landed_through(instance: DagsterInstance) -> int:
    """The last offset the ingest has applied (-1: none): the highest segment end among the
    newest ``annotations`` materialisations, since one run records its partitions' in no
    particular order."""
    records = instance.fetch_materializations(ANNOTATIONS, limit=_NEWEST).records
    segments = [recorded_segment(r) for r in records]
    return max((s.last for s in segments if s is not None), default=-1)


@dataclass(frozen=True)
class Changed:
    validated: int  # distinct names validated now and changed since the cutoff
    segments: int  # annotations materialisations since the cutoff (a segment each)
    events_only: int  # of ``validated``: counted as events, from partitions without names


def cutoff_of(instance: DagsterInstance, record: EventLogRecord) -> dict:
    """Annotations count as new from the start of the run that made ``record`` (a dataset):
    those applied while it was forming may be missing from it, so they count again (retraining
    a little early beats never counting them)."""
    run = instance.get_run_record_by_id(record.run_id) if record.run_id else None
    if run is None or run.start_time is None:
        return {"after_storage_id": record.storage_id}
    cutoff: dict = {"after_timestamp": run.start_time}
    # A timestamp alone is a scan of a year of segments from the oldest (bench/year.py); a
    # storage id an hour older bounds it to the recent ones, and the timestamp stays exact.
    before = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=ANNOTATIONS, before_timestamp=run.start_time - _SLACK),
        limit=1,
    ).records
    if before:
        cutoff["after_storage_id"] = before[0].storage_id
    return cutoff


def changed_since(instance: DagsterInstance, cutoff: dict) -> Changed:
    """How many annotations changed since ``cutoff`` (``cutoff_of``; empty: ever).

    Replays the ``annotations`` materialisations after it in the order they were recorded: each
    names what it left in data/ with new or changed content, and what it took out. The names
    still in the set are distinct annotations validated now and changed since the cutoff: a
    re-sent message counts once, an edit counts, an annotation deleted again does not."""
    names: set[str] = set()
    events_only = segments = 0
    cursor = None
    while True:
        page = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=ANNOTATIONS, **cutoff),
            limit=_PAGE,
            cursor=cursor,
            ascending=True,
        )
        for record in page.records:
            segments += 1
            into, out = value_of(record, VALIDATED_NAMES), value_of(record, LEFT_DATA_NAMES)
            if into is None or out is None:  # recorded before the names were kept
                events_only += int(value_of(record, VALIDATED) or 0)
                continue
            names.difference_update(out)
            names.update(into)
        if not page.has_more:
            break
        cursor = page.cursor
    return Changed(len(names) + events_only, segments, events_only)


def newest_dataset(instance: DagsterInstance) -> tuple[str | None, dict]:
    """The newest dataset's partition, and the cutoff after which annotations are new to it."""
    latest = instance.fetch_materializations(DATASET, limit=1).records
    if not latest:
        return None, {}
    return latest[0].partition_key, cutoff_of(instance, latest[0])


def promoted_partition(record: EventLogRecord) -> str | None:
    """The partition a materialisation of ``champion`` names (None: an event naming none)."""
    value = value_of(record, "partition")
    return str(value) if value is not None else None


def champion_record(instance: DagsterInstance) -> EventLogRecord | None:
    """The newest ``champion`` materialisation: the latest promotion."""
    latest = instance.fetch_materializations(CHAMPION, limit=1).records
    return latest[0] if latest else None


def current_champion(instance: DagsterInstance) -> str | None:
    record = champion_record(instance)
    return promoted_partition(record) if record is not None else None


def champion_history(instance: DagsterInstance, count: int) -> tuple[str, ...]:
    """The live champion's partition and up to ``count`` champions before it, newest first
    (each once: a champion promoted again counts where it last was)."""
    seen: list[str] = []
    cursor = None
    while len(seen) <= count:
        page = instance.fetch_materializations(CHAMPION, limit=_PAGE, cursor=cursor)
        for record in page.records:
            partition = promoted_partition(record)
            if partition is not None and partition not in seen:
                seen.append(partition)
        if not page.has_more:
            break
        cursor = page.cursor
    return tuple(seen[: count + 1])


def released_since(instance: DagsterInstance, timestamp: float) -> frozenset[str]:
    """The partitions ``model_release`` materialised after ``timestamp``."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(RELEASE, after_timestamp=timestamp), limit=_PAGE
    ).records
    return frozenset(r.partition_key for r in records if r.partition_key is not None)


def released_after(instance: DagsterInstance, partition: str, promoted_at: int) -> bool:
    """Whether ``partition`` has a release materialised after its promotion event."""
    return bool(
        instance.fetch_materializations(
            AssetRecordsFilter(RELEASE, asset_partitions=[partition], after_storage_id=promoted_at),
            limit=1,
        ).records
    )


def active_training(instance: DagsterInstance) -> str | None:
    """What keeps the GPU busy: a training run queued or running; or, for a step launched
    outside retraining_job (``model`` from the asset graph, a ``champion_monitor`` score), a
    busy ``gpu`` pool, named by its run's job."""
    records = instance.get_run_records(
        RunsFilter(tags={STAGE_TAG: TRAIN_STAGE}, statuses=ACTIVE), limit=1
    )
    if records:
        run = records[0].dagster_run
        return f"training in progress: run {run.run_id[:8]} is {run.status.value}"
    pool = instance.event_log_storage.get_concurrency_info(GPU_POOL)
    holders = sorted(pool.active_run_ids | pool.pending_run_ids)
    if holders:
        run = instance.get_run_by_id(holders[0])
        job = run.job_name if run is not None else "unknown job"
        return f"gpu busy: {job} run {holders[0][:8]} holds or awaits the {GPU_POOL} pool"
    return None


def latest_watch(instance: DagsterInstance, champion: str | None, cutoff: dict) -> Watch | None:
    """The champion's latest score on new data; stale when it scored another champion, or
    before the newest dataset was formed (that data has had its retraining since)."""
    latest = instance.fetch_materializations(MONITOR, limit=1).records
    if not latest or latest[0].asset_materialization is None:
        return None
    record = latest[0]
    scored = str(value_of(record, CHAMPION_ENTRY))
    stale = None
    if scored != champion:
        stale = f"it scored champion {scored}, the champion is {champion}"
    elif record.timestamp < cutoff.get("after_timestamp", 0) or record.storage_id < cutoff.get(
        "after_storage_id", 0
    ):
        stale = "scored before the newest dataset formed"
    return Watch(
        scored,
        float(value_of(record, NEW_SCORE)),
        float(value_of(record, TEST_SCORE)),
        int(value_of(record, NEW_IMAGES)),
        stale,
    )
