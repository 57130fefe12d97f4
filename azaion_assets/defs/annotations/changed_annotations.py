"""How many annotations changed since a point in time, read from the Dagster instance alone.

Both sensors that wait for new data (retraining, champion monitoring) ask this every tick, so it
reads the ``annotations`` materialisations after a cutoff and never the data tree. Each
partition's metadata names what it left in data/ with new or changed content, and what it took
out of data/; replayed in the order they were applied, the names still in the set are the
distinct annotations validated now and changed since the cutoff. A re-sent message counts once
(or not at all when its content was identical), an edit counts as a change, and an annotation
deleted again does not count.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, EventLogRecord

from azaion_assets.defs.annotations.annotations import (
    LEFT_DATA_NAMES,
    VALIDATED,
    VALIDATED_NAMES,
    recorded_segment,
)

_PAGE = 1000
# More than one run's materialisations: a run records its partitions' in no particular order.
_NEWEST = 500


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
    if run is not None and run.start_time is not None:
        return {"after_timestamp": run.start_time}
    return {"after_storage_id": record.storage_id}


def changed_since(instance: DagsterInstance, cutoff: dict) -> Changed:
    """Replay the ``annotations`` materialisations after ``cutoff`` (``cutoff_of``; empty:
    all of them) in the order they were recorded."""
    names: set[str] = set()
    events_only = segments = 0
    cursor = None
    while True:
        page = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("annotations"), **cutoff),
            limit=_PAGE,
            cursor=cursor,
            ascending=True,
        )
        for record in page.records:
            materialization = record.asset_materialization
            metadata = materialization.metadata if materialization else {}
            segments += 1
            into, out = metadata.get(VALIDATED_NAMES), metadata.get(LEFT_DATA_NAMES)
            if into is None or out is None:  # recorded before the names were kept
                events_only += int(getattr(metadata.get(VALIDATED), "value", 0) or 0)
                continue
            names.difference_update(out.value)  # type: ignore[arg-type]
            names.update(into.value)  # type: ignore[arg-type]
        if not page.has_more:
            break
        cursor = page.cursor
    return Changed(len(names) + events_only, segments, events_only)


def landed_through(instance: DagsterInstance) -> int:
    """The last offset the ingest has applied (-1: none): the highest segment end among the
    newest ``annotations`` materialisations, since one run records its partitions' in no
    particular order."""
    records = instance.fetch_materializations(AssetKey("annotations"), limit=_NEWEST).records
    segments = [recorded_segment(r) for r in records]
    return max((s.last for s in segments if s is not None), default=-1)
