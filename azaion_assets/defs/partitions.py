"""Partitions shared by the stages of the graph.

``daily_partitions`` keys the dated products (arrivals, dataset, model, ONNX export, release) by
``YYYY-MM-DD``; ``end_offset=1`` makes today's partition exist, since a dataset is formed during
its day. They start at ``DAILY_PARTITIONS_START``, else on the first day this instance ingested
or formed a dataset, so a new install lists a handful of days rather than years of empty ones.
``annotation_batches`` are offset ranges of the annotation stream, added at run time by the stream
sensor.
"""

import sqlite3
from datetime import UTC, date, datetime

from dagster import DailyPartitionsDefinition, DynamicPartitionsDefinition

from azaion_assets.lib.config.datatree import DATASET_PREFIX, DataTree
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.ingest.ingest_state import first_applied_at

ANNOTATION_BATCHES = "annotation_batches"
annotation_batches = DynamicPartitionsDefinition(name=ANNOTATION_BATCHES)


def daily_partitions(start: date) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(
        start_date=start.isoformat(), end_offset=1, timezone="UTC", fmt="%Y-%m-%d"
    )


def partitions_start(settings: Settings) -> date:
    """``DAILY_PARTITIONS_START``, else the first day of this data tree's ingest or of its dated
    folders (a tree that was trained before it ingested), else today. Never raises: an
    unreadable tree starts today, and the partitions already materialised stay in the instance
    until the tree is readable again."""
    if settings.daily_partitions_start is not None:
        return settings.daily_partitions_start
    today = datetime.now(UTC).date()
    try:
        tree = DataTree.from_settings(settings)
        days = [
            _dated(p.name)
            for folder in (tree.datasets, tree.models)
            if folder.is_dir()
            for p in folder.iterdir()
        ]
        if first := first_applied_at(tree.root):
            days.append(datetime.fromisoformat(first).astimezone(UTC).date())
    except (OSError, ValueError, sqlite3.Error):
        return today
    return min([d for d in days if d is not None and d <= today], default=today)


def _dated(name: str) -> date | None:
    try:
        return (
            date.fromisoformat(name.removeprefix(DATASET_PREFIX))
            if name.startswith(DATASET_PREFIX)
            else None
        )
    except ValueError:
        return None
