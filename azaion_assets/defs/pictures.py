"""Pictures on the asset pages, and beside the model for people without the UI.

The Dagster UI renders a Markdown metadata entry, data-URI images included, when it is opened
(``[Show Markdown]`` on the Events tab). Each materialisation's pictures share one byte budget
(PICTURES_BUDGET_BYTES), since a year of materialisations stays in the instance
(docs/housekeeping.md); the same pictures are written as files under a ``report/`` folder.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    MetadataValue,
    TextMetadataValue,
    TimestampMetadataValue,
)

from azaion_assets.lib.fsio.atomic import atomic_write_bytes
from azaion_assets.lib.pictures.embed import Picture, Shown, embed, file_bytes

REPORT = "report"
# An asset materialised many times a day redraws its pictures at most every PICTURES_EVERY_MINUTES;
# every materialisation carries when and by which run they were drawn last.
PICTURES_DRAWN = "pictures_drawn_at"
PICTURES_RUN = "pictures_run"


def drawn_marks(run_id: str) -> dict[str, Any]:
    """The entries that say this materialisation's pictures were drawn now, by ``run_id``."""
    return {PICTURES_DRAWN: MetadataValue.timestamp(time.time()), PICTURES_RUN: run_id}


def carried(
    instance: DagsterInstance,
    key: AssetKey,
    partition: str | None,
    every_seconds: float,
    entry: str,
    draw_now: str,
) -> dict[str, Any] | None:
    """Where the pictures of ``key`` (``partition``) were drawn less than ``every_seconds``
    ago: ``entry`` pointing to them, and the marks carried on; None when they are due."""
    if every_seconds <= 0:
        return None
    where = AssetRecordsFilter(key, asset_partitions=[partition] if partition else None)
    records = instance.fetch_materializations(where, limit=1).records
    latest = records[0].asset_materialization if records else None
    drawn = latest.metadata.get(PICTURES_DRAWN) if latest else None
    run = latest.metadata.get(PICTURES_RUN) if latest else None
    if not isinstance(drawn, TimestampMetadataValue) or not isinstance(run, TextMetadataValue):
        return None
    if time.time() - drawn.value >= every_seconds:
        return None
    at = datetime.fromtimestamp(drawn.value, UTC).strftime("%H:%M")
    text = (
        f"*These pictures were drawn at {at} UTC by run `{run.value}`: open that run's "
        f"materialisation on the Events tab. They are drawn again at most every "
        f"{round(every_seconds / 60)} minutes (PICTURES_EVERY_MINUTES); {draw_now}.*"
    )
    return {entry: MetadataValue.md(text), PICTURES_DRAWN: drawn, PICTURES_RUN: run}


def picture_entry(pictures: Sequence[Picture], budget: int, header: str = "") -> MetadataValue:
    """The pictures as one Markdown entry under ``header``; what did not fit the budget is
    named under them."""
    shown = embed(pictures, budget)
    parts = [header, shown.markdown] if header else [shown.markdown]
    if shown.left_out:
        left = ", ".join(shown.left_out)
        parts.append(f"*Left out to stay within {budget:,} bytes: {left}.*")
    return MetadataValue.md("\n\n".join(parts))


def save_report(folder: Path, name: str, data: bytes) -> Path:
    """``data`` as ``folder/report/name``, written whole or not at all."""
    target = folder / REPORT / name
    target.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(target, data)


def show(
    folder: Path, pictures: Sequence[Shown], budget: int, header: str = "", owns: str = ""
) -> MetadataValue:
    """Each picture saved under ``folder/report/`` and all of them as one metadata entry.
    Files matching the glob ``owns`` that this call did not write are an earlier gallery's,
    and go once the new one is written, so ``report/`` shows the latest."""
    written = {save_report(folder, item.file, file_bytes(item.picture)) for item in pictures}
    if owns:
        for stale in set((folder / REPORT).glob(owns)) - written:
            stale.unlink(missing_ok=True)
    return picture_entry([item.picture for item in pictures], budget, header)


def gallery_entries(
    entry: str,
    folder: Path,
    pictures: Sequence[Shown],
    rule: str,
    threshold: float,
    legend: str,
    budget: int,
    owns: str,
) -> dict[str, Any]:
    """A gallery as ``entry`` (its rule and legend above the pictures, ``show``n), and a
    ``gallery`` entry naming the rule, the score threshold and the frames it picked."""
    gallery = {
        "rule": rule,
        "score_threshold": threshold,
        "frames": [item.frame for item in pictures if item.frame],
    }
    header = f"Gallery: {rule}. {legend}"
    return {
        entry: show(folder, pictures, budget, header, owns),
        "gallery": MetadataValue.json(gallery),
    }
