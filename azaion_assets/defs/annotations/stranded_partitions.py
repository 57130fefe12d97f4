"""Runs that ended without landing their offsets, and what to do about them.

An ingest run applies a segment of the stream's offsets (its ``azaion/offsets`` tag). Its
offsets are stranded when the run failed or was cancelled (a killed run worker, a lost node,
broker trouble past the step's retries) and no run with the same offsets has succeeded since or
is in flight. ``annotation_stream_sensor`` requests such offsets again, with the same tag, up to
``MAX_REQUESTS`` runs in all; offsets that still have not landed are given up on, and the
``every_partition_landed`` check fails, naming them, where an operator looks (the asset's page).
A run made before the tag existed is judged by its partitions: landed once all are materialised.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    MetadataValue,
    RunsFilter,
    asset_check,
)

from azaion_assets.defs.annotations.annotations import INGEST_TAGS, OFFSETS_TAG, annotations
from azaion_assets.defs.annotations.ingest_job import run_offsets, run_partitions
from azaion_assets.defs.partitions import ANNOTATION_BATCHES
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets.lib.text import plural

MAX_REQUESTS = 3  # runs one segment gets before it is given up on (the first included)
WINDOW = timedelta(days=7)  # how far back failed runs count
CHECK = "every_partition_landed"
ANNOTATIONS = AssetKey("annotations")
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
ENDED = [DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
_SAMPLE = 20


@dataclass(frozen=True)
class Retry:
    keys: list[str]  # the first and last partition of the failed run (one if the same)
    offsets: OffsetRange
    attempt: int  # the number of this next request


@dataclass(frozen=True)
class Stranded:
    retry: list[Retry]  # oldest offsets first
    given_up: list[str]  # offsets keys


@dataclass
class _Failed:
    keys: list[str]
    runs: int = 0
    tagged: bool = False  # made with the offsets tag (else judged by its partitions)


def ingest_in_flight(instance: DagsterInstance) -> DagsterRun | None:
    """An ingest run queued, starting or running, if any: there is at most one."""
    runs = _ingest_runs(instance, RunsFilter(statuses=IN_FLIGHT))
    return runs[0] if runs else None


def _ingest_runs(instance: DagsterInstance, filters: RunsFilter) -> list[DagsterRun]:
    """The ingest runs among those ``filters`` selects by status, newest first. The tag is
    matched here, not in the query: a tag filter selects every ingest run ever made before
    the status narrows them (a year's 240,000 cost each tick about 0.9 s, bench/year.py),
    while runs in flight or ended badly this week are a handful of all jobs."""
    runs = instance.get_runs(filters)
    return [r for r in runs if all(r.tags.get(k) == v for k, v in INGEST_TAGS.items())]


def find_stranded(instance: DagsterInstance) -> Stranded:
    """Stranded offsets, oldest first, from the ingest runs that ended badly in ``WINDOW``."""
    since = datetime.now(UTC) - WINDOW
    failed: dict[OffsetRange, _Failed] = {}
    ended = RunsFilter(statuses=ENDED, updated_after=since)
    for run in _ingest_runs(instance, ended):  # the usual tick: this one query, of no run
        tags = dict(run.tags)
        offsets, span = run_offsets(tags), run_partitions(tags)
        if offsets is None or span is None:
            continue
        entry = failed.setdefault(offsets, _Failed(sorted(set(span))))
        entry.runs += 1
        entry.tagged |= OFFSETS_TAG in tags
    retry, given_up = [], []
    old_shape: _OldShape | None = None
    for offsets, entry in sorted(failed.items()):
        if _has_run(instance, offsets, [DagsterRunStatus.SUCCESS, *IN_FLIGHT]):
            continue
        if not entry.tagged:
            old_shape = old_shape or _OldShape(instance)
            if old_shape.landed(entry.keys):
                continue
        if entry.runs >= MAX_REQUESTS:
            given_up.append(offsets.key)
        else:
            retry.append(Retry(entry.keys, offsets, entry.runs + 1))
    return Stranded(retry, given_up)


def _has_run(instance: DagsterInstance, offsets: OffsetRange, statuses: list) -> bool:
    tags = {**INGEST_TAGS, OFFSETS_TAG: offsets.key}
    return bool(instance.get_run_ids(RunsFilter(statuses=statuses, tags=tags), limit=1))


class _OldShape:
    """Runs made before the offsets tag covered whole partitions: landed once each is. The
    partitions are read once, and only if such a run failed."""

    def __init__(self, instance: DagsterInstance) -> None:
        self.keys = instance.get_dynamic_partitions(ANNOTATION_BATCHES)
        self.done = instance.get_materialized_partitions(ANNOTATIONS)

    def landed(self, span: list[str]) -> bool:
        first, last = span[0], span[-1]
        covered = [k for k in self.keys if first <= k <= last]
        return bool(covered) and set(covered) <= self.done


def landed_evaluation(given_up: Sequence[str]) -> AssetCheckEvaluation:
    """The check's verdict as the sensor records it, when its list of given-up offsets
    changes."""
    return AssetCheckEvaluation(
        asset_key=ANNOTATIONS,
        check_name=CHECK,
        passed=not given_up,
        severity=AssetCheckSeverity.ERROR,
        metadata=_metadata(given_up),
        description=_describe(given_up),
    )


def _metadata(given_up: Sequence[str]) -> dict:
    return {
        "given_up": len(given_up),
        "offsets": MetadataValue.json(list(given_up[:_SAMPLE])),
    }


def _describe(given_up: Sequence[str]) -> str:
    if not given_up:
        return "every requested offset has landed or is in flight"
    return (
        f"given up on {plural(len(given_up), 'offset range')} after "
        f"{plural(MAX_REQUESTS, 'failed run')} each; fix the cause (see the runs), then "
        f"re-execute each one's last run (its {OFFSETS_TAG} tag names the offsets)"
    )


@asset_check(asset=annotations, name=CHECK, blocking=False, description=__doc__)
def every_partition_landed(context) -> AssetCheckResult:
    """Run from the UI: the same verdict the stream sensor keeps up to date."""
    stranded = find_stranded(context.instance)
    return AssetCheckResult(
        passed=not stranded.given_up,
        severity=AssetCheckSeverity.ERROR,
        metadata={**_metadata(stranded.given_up), "to_retry": len(stranded.retry)},
        description=_describe(stranded.given_up),
    )
