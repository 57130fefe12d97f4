"""``ingest_job``: the runs that carry new stream offsets into the data tree.

The stream sensor launches this job, not the asset's implicit job, for its executor: an ingest
run is one step, and the in-process executor spares it a second process start (about 1.3 s of
every run on 2 cores, as long as applying a partition of 1,000 messages). A run covers one
partition or, for a backlog, a range of them (``BackfillPolicy.single_run`` on the asset).
"""

from collections.abc import Sequence

from dagster import (
    AssetSelection,
    RunRequest,
    define_asset_job,
    in_process_executor,
)

from azaion_assets.defs.annotations.annotations import INGEST_TAGS, OFFSETS_TAG, annotations
from azaion_assets.lib.stream.offsets import OffsetRange

INGEST_JOB = "ingest_job"
# The run tags by which Dagster runs a range of partitions in one run (its backfill protocol,
# shown on every such run's page); test_annotations runs a real range run with them.
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"

ingest_job = define_asset_job(
    INGEST_JOB,
    selection=AssetSelection.assets(annotations).without_checks(),
    executor_def=in_process_executor,
    tags=INGEST_TAGS,
    description="Apply stream partitions to the data tree; one ingest run at a time",
)


def ingest_request(keys: Sequence[str], offsets: OffsetRange, attempt: int = 1) -> RunRequest:
    """One run of ``ingest_job`` applying ``offsets`` to ``keys``, consecutive partitions in
    stream order. The run key is the offsets (and the attempt, after the first): a request is
    never made twice. The job is named so that a run never falls to an anonymous asset job."""
    tags = {**INGEST_TAGS, OFFSETS_TAG: offsets.key}
    run_key = offsets.key if attempt == 1 else f"{offsets.key}#{attempt}"
    if len(keys) == 1:
        return RunRequest(run_key=run_key, job_name=INGEST_JOB, partition_key=keys[0], tags=tags)
    tags[ASSET_PARTITION_RANGE_START_TAG] = keys[0]
    tags[ASSET_PARTITION_RANGE_END_TAG] = keys[-1]
    return RunRequest(run_key=run_key, job_name=INGEST_JOB, tags=tags)


def run_offsets(tags: dict[str, str]) -> OffsetRange | None:
    """The offsets an ingest run applies: its tag, or for a run made before the tag (or by
    hand) the span of its partitions."""
    if OFFSETS_TAG in tags:
        return OffsetRange.parse(tags[OFFSETS_TAG])
    span = run_partitions(tags)
    if span is None:
        return None
    return OffsetRange(OffsetRange.parse(span[0]).first, OffsetRange.parse(span[1]).last)


def run_partitions(tags: dict[str, str]) -> tuple[str, str] | None:
    """The first and last partition key an ingest run covers, from its tags."""
    if ASSET_PARTITION_RANGE_START_TAG in tags and ASSET_PARTITION_RANGE_END_TAG in tags:
        return tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG]
    key = tags.get("dagster/partition")
    return (key, key) if key else None
