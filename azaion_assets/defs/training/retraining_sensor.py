"""``retraining_sensor``: request ``retraining_job`` for today once enough new validated data
has landed.

Each tick gathers facts from the Dagster instance only (runs, and the materialisations of
``annotations`` and ``dataset`` with their metadata), never from the data tree, so it is cheap and
works on a daemon that does not mount the data. The policy itself is ``retrain_policy.decide``;
when it says no, the tick is skipped with its reason, which is what the UI shows under the
sensor's ticks: why retraining has not started yet. Every tick reads the facts afresh; the cursor
holds only the last decision and when it was made, because the sensor's page shows the cursor
as it is, while a skip reason shows only in its tick's dialog.
"""

import json
from datetime import UTC, datetime

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from azaion_assets.defs.annotations.annotations import VALIDATED
from azaion_assets.defs.training.model import GPU_POOL
from azaion_assets.defs.training.retraining_job import RETRAINING_JOB
from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.config.sources import load_settings
from azaion_assets.lib.training.retrain_policy import (
    STAGE_TAG,
    TRAIN_STAGE,
    TRIGGER_TAG,
    Facts,
    decide,
)

ACTIVE = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
_PAGE = 1000
SENSOR = "retraining_sensor"


def active_training(instance: DagsterInstance) -> str | None:
    """A training run queued or running; or, for a training launched outside retraining_job
    (no run tags, e.g. ``model`` materialised from the asset graph), a busy ``gpu`` pool."""
    records = instance.get_run_records(
        RunsFilter(tags={STAGE_TAG: TRAIN_STAGE}, statuses=ACTIVE), limit=1
    )
    if records:
        run = records[0].dagster_run
        return f"run {run.run_id[:8]} is {run.status.value}"
    pool = instance.event_log_storage.get_concurrency_info(GPU_POOL)
    holders = sorted(pool.active_run_ids | pool.pending_run_ids)
    if holders:
        return f"run {holders[0][:8]} holds or awaits the {GPU_POOL} pool"
    return None


def requested_today(instance: DagsterInstance, today: str) -> str | None:
    """The sensor's own run for today, if any: one automatic attempt a day (with run retries)."""
    tags = {TRIGGER_TAG: SENSOR, "dagster/partition": today}
    records = instance.get_run_records(RunsFilter(tags=tags), limit=1)
    if not records:
        return None
    run = records[0].dagster_run
    return f"run {run.run_id[:8]} ended {run.status.value}"


def dataset_today(instance: DagsterInstance, today: str) -> str | None:
    result = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("dataset"), asset_partitions=[today]), limit=1
    )
    if not result.records:
        return None
    record = result.records[0]
    at = datetime.fromtimestamp(record.timestamp, UTC).strftime("%H:%M UTC")
    return f"formed at {at} by run {record.run_id[:8]}"


def _dataset_cutoff(instance: DagsterInstance, record) -> dict:
    """Annotations count as new from the start of the run that formed the newest dataset:
    those applied while it was forming may be missing from it, so they count again (retraining
    a little early beats never counting them)."""
    run = instance.get_run_record_by_id(record.run_id) if record.run_id else None
    if run is not None and run.start_time is not None:
        return {"after_timestamp": run.start_time}
    return {"after_storage_id": record.storage_id}


def new_since_last_dataset(instance: DagsterInstance) -> tuple[str | None, int, int]:
    """(newest dataset partition, validated annotations and partitions materialised since)."""
    latest = instance.fetch_materializations(AssetKey("dataset"), limit=1).records
    cutoff = _dataset_cutoff(instance, latest[0]) if latest else {}
    validated = partitions = 0
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
            value = materialization.metadata.get(VALIDATED) if materialization else None
            validated += int(getattr(value, "value", 0) or 0)
            partitions += 1
        if not page.has_more:
            break
        cursor = page.cursor
    return (latest[0].partition_key if latest else None), validated, partitions


def gather_facts(instance: DagsterInstance, today: str) -> Facts:
    last, validated, partitions = new_since_last_dataset(instance)
    return Facts(
        today=today,
        active_training=active_training(instance),
        dataset_today=dataset_today(instance, today),
        requested_today=requested_today(instance, today),
        last_dataset=last,
        new_validated=validated,
        new_partitions=partitions,
    )


DESCRIPTION = (
    "Starts a retraining (dataset, model, ONNX export, champion) once enough new validated "
    "annotations have arrived since the last dataset (RETRAIN_MIN_NEW_VALIDATED), at most once a "
    "day and never beside another training. Its cursor shows the last decision."
)


def build_retraining_sensor(interval_seconds: int) -> SensorDefinition:
    @sensor(
        name=SENSOR,
        job_name=RETRAINING_JOB,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=DESCRIPTION,
    )
    def retraining_sensor(context: SensorEvaluationContext):
        try:
            threshold = load_settings(scopes=[Scope.TRAINING]).retrain_min_new_validated
        except ConfigError as exc:
            return SkipReason(f"settings to fix: {exc.summary()}")
        now = datetime.now(UTC)
        today = now.strftime("%Y-%m-%d")
        facts = gather_facts(context.instance, today)
        decision = decide(facts, threshold)
        # The cursor holds no state here: it is the last decision, which the sensor's page shows
        # as it is (a skip reason only shows in each tick's dialog).
        last = {"last_decision": decision.reason, "at": now.isoformat(timespec="seconds")}
        context.update_cursor(json.dumps(last))
        if not decision.request:
            return SkipReason(decision.reason)
        context.log.info(decision.reason)
        return RunRequest(
            run_key=f"retrain-{today}",
            partition_key=today,
            tags={
                TRIGGER_TAG: "retraining_sensor",
                "azaion/new_validated": str(facts.new_validated),
            },
        )

    return retraining_sensor
