"""The year's runs, day by day, at the stated rhythm: what ``bench.year`` fills an instance with.

Templates come from real instances (``bench.year_instance.templates``): a trickle's ingest runs,
the demo's retraining, release and monitor runs, and a housekeeping run. Each day of the year
gets the ingest runs of a working day, one retraining, a score of the day's champion each
``MONITOR_MIN_NEW_VALIDATED`` new annotations, a release on promotion days and the night's
housekeeping; its annotation partitions (one per ``STREAM_BATCH_MESSAGES`` offsets) are added as
Dagster's dynamic partitions; then the asset index, and the ticks the shipped tick retention
keeps, once, for the last 7 or 90 days.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from dagster import DagsterInstance

from azaion_assets.defs.partitions import ANNOTATION_BATCHES
from bench.year_instance import (
    Copy,
    Filler,
    Template,
    copy_snapshots,
    copy_ticks,
    index_assets,
    shifted_tick,
    tick_templates,
)

WORKDAY = (8, 18)  # annotators' hours, UTC
BATCH = 1000  # STREAM_BATCH_MESSAGES' default: offsets a partition holds


@dataclass(frozen=True)
class Rhythm:
    """What a day brings: annotations, and the runs they make."""

    annotations: int = 30_000
    ingest_runs: int = 600  # measured from the trickle sample in ``bench.year``
    monitor_runs: int = 30  # MONITOR_MIN_NEW_VALIDATED's worth of new annotations each
    promote_every_days: int = 7

    def released(self, n: int) -> bool:
        return n % self.promote_every_days == 0


@dataclass
class Templates:
    ingest: list[Template]
    retraining: Template
    release: Template
    monitor: Template
    housekeeping: Template
    ticks: dict[str, dict[str, list[dict]]]  # sensor/schedule origin -> status -> rows
    sources: list[DagsterInstance]


def _key(first: int) -> str:
    block = first - first % BATCH
    return f"{block:012d}-{block + BATCH - 1:012d}"


def fill(instance: DagsterInstance, t: Templates, rhythm: Rhythm, last: date, days: int) -> dict:
    """``days`` days ending ``last`` into ``instance``, the last one until the annotators' day
    ends (its retraining not yet run); returns the counts written."""
    for source in t.sources:
        runs = [r.dagster_run for r in source.get_run_records()]
        copy_snapshots(source, instance, runs)
    filler = Filler(instance)
    partitions = 0
    champion: str | None = None
    ingest = itertools.cycle(t.ingest)
    for n in range(1, days + 1):
        day = last - timedelta(days=days - n)
        start = datetime(day.year, day.month, day.day, WORKDAY[0], tzinfo=UTC).timestamp()
        hours = (WORKDAY[1] - WORKDAY[0]) * 3600
        base = (n - 1) * rhythm.annotations
        per_run = rhythm.annotations // rhythm.ingest_runs
        for k in range(rhythm.ingest_runs):
            template = next(ingest)
            first = base + k * per_run
            keys = {p: _key(first + int(p[:12]) - template.first_offset) for p in _keys(template)}
            at = start + k * hours / rhythm.ingest_runs
            names = ("bench_", f"d{n:03d}r{k:03d}_")  # each copy brings annotations of its own
            filler.add(Copy(template, at, day.isoformat(), first, keys, names=names))
        new = sorted({_key(o) for o in range(base, base + rhythm.annotations, BATCH)})
        instance.add_dynamic_partitions(ANNOTATION_BATCHES, new)
        partitions += len(new)
        filler.add(Copy(t.housekeeping, start - 4.5 * 3600, day.isoformat()))
        for h in range(rhythm.monitor_runs):  # each scores the champion of the day
            at = start + (h + 0.5) * hours / rhythm.monitor_runs
            scored = {"champion": champion} if champion else None
            filler.add(Copy(t.monitor, at, day.isoformat(), texts=scored))
        if n == days:
            break  # the last day ends with the working day: its retraining is still to come
        # Not a promotion: the champion step checks and materialises nothing.
        kept = None if rhythm.released(n) else '["champion"]'
        filler.add(Copy(t.retraining, start + hours + 1800, day.isoformat(), without=kept))
        if rhythm.released(n):
            filler.add(Copy(t.release, start + hours + 5400, day.isoformat()))
            champion = day.isoformat()
        if n % 5 == 0:
            filler.flush()
    filler.flush()
    index_assets(instance)
    return {**filler.counts, "partitions": partitions}


def _keys(template: Template) -> set[str]:
    """The annotation partitions a template run wrote."""
    return {
        e["partition"]
        for e in template.events
        if e["asset_key"] == '["annotations"]' and e["partition"]
    }


def retained_ticks(instance: DagsterInstance, t: Templates, intervals: dict[str, int], last: date):
    """The ticks a year leaves under the shipped retention: skipped ones of the last 7 days,
    the rest of the last 90, at each sensor's interval (a requesting tick per ingest run for the
    stream sensor; the schedule's one a day)."""
    end = datetime(last.year, last.month, last.day, 23, 59, tzinfo=UTC).timestamp()

    def rows():
        for origin, by_status in t.ticks.items():
            interval = intervals.get(origin, 86400)
            for status, keep_days in (("SKIPPED", 7), ("SUCCESS", 90), ("STARTED", 0)):
                examples = by_status.get(status)
                if not examples or keep_days == 0:
                    continue
                count = keep_days * 86400 // interval
                if status == "SUCCESS" and origin in intervals:
                    count = keep_days * intervals.get(f"{origin}:requests", 1)
                for i in range(count):
                    yield shifted_tick(
                        examples[i % len(examples)], end - i * (keep_days * 86400 / count)
                    )

    return copy_ticks(instance, rows())


def ticks_by_origin(instance: DagsterInstance) -> dict[str, dict[str, list[dict]]]:
    """``tick_templates`` keyed by the instigator's name."""
    names = {s.instigator_origin_id: s.instigator_name for s in instance.all_instigator_state()}
    out: dict[str, dict[str, list[dict]]] = {}
    for status, rows in tick_templates(instance).items():
        for row in rows:
            name = names.get(row["job_origin_id"]) or row["job_origin_id"]
            out.setdefault(name, {}).setdefault(status, []).append(row)
    return out
