"""Partitions that were requested but never landed, and what to do about them.

A partition is stranded when an ingest run that covered it failed or was cancelled (a killed run
worker, a lost node, broker trouble past the step's retries), and it has no materialisation and
no ingest run queued or in progress covers it. ``annotation_stream_sensor`` requests such a
partition again, on its own, up to ``MAX_REQUESTS`` runs in all; one that still has not landed
is given up on, and the ``every_partition_landed`` check fails, naming it, where an operator
looks (the asset's page).
A partition in a run that is still in flight is never requested twice.
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
    DagsterRunStatus,
    MetadataValue,
    RunsFilter,
    asset_check,
)

from azaion_assets.defs.annotations.annotations import INGEST_TAGS, annotations
from azaion_assets.defs.annotations.ingest_job import run_partitions
from azaion_assets.defs.partitions import ANNOTATION_BATCHES
from azaion_assets.lib.text import plural

MAX_REQUESTS = 3  # runs one partition gets before it is given up on (the first included)
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
class Stranded:
    retry: list[tuple[str, int]]  # partition key, the number of this next request
    given_up: list[str]


def find_stranded(instance: DagsterInstance) -> Stranded:
    """Stranded partitions, oldest first, from the ingest runs of the last ``WINDOW``."""
    since = datetime.now(UTC) - WINDOW
    failed = _spans(instance, RunsFilter(statuses=ENDED, tags=INGEST_TAGS, updated_after=since))
    if not failed:  # the usual tick: one query of failed runs, none of the partitions
        return Stranded([], [])
    landed = instance.get_materialized_partitions(ANNOTATIONS)
    flying = _spans(instance, RunsFilter(statuses=IN_FLIGHT, tags=INGEST_TAGS))
    retry, given_up = [], []
    for key in instance.get_dynamic_partitions(ANNOTATION_BATCHES):
        if key in landed or any(first <= key <= last for first, last in flying):
            continue
        made = sum(first <= key <= last for first, last in failed)
        if not made:
            continue  # never run yet: its first run is still being launched
        if made >= MAX_REQUESTS:
            given_up.append(key)
        else:
            retry.append((key, made + 1))
    return Stranded(retry, given_up)


def _spans(instance: DagsterInstance, runs: RunsFilter) -> list[tuple[str, str]]:
    """The first and last partition of each run (keys sort in stream order)."""
    return [span for run in instance.get_runs(runs) if (span := run_partitions(dict(run.tags)))]


def landed_evaluation(given_up: Sequence[str]) -> AssetCheckEvaluation:
    """The check's verdict as the sensor records it, when its list of given-up partitions
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
        "partitions": MetadataValue.json(list(given_up[:_SAMPLE])),
    }


def _describe(given_up: Sequence[str]) -> str:
    if not given_up:
        return "every requested partition has landed or is in flight"
    return (
        f"given up on {plural(len(given_up), 'partition')} after "
        f"{plural(MAX_REQUESTS, 'failed run')} each; fix the cause (see the runs), then "
        "materialise each one again from this asset's partitions"
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
