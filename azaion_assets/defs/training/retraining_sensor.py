"""``retraining_sensor``: request ``retraining_job`` for today once enough annotations changed
since the last dataset, or the champion scores too far below its test score on them.

Each tick gathers facts from the Dagster instance only (runs, and the materialisations of
``annotations``, ``dataset``, ``champion`` and ``champion_monitor`` with their metadata), never
from the data tree, so it is cheap and works on a daemon that does not mount the data. The
policy itself is ``retrain_policy.decide``; when it says no, the tick is skipped with its
reason, which names both rules and their figures: what the UI shows under the sensor's ticks.
The cursor holds only the last decision and when it was made, because the sensor's page shows
the cursor as it is, while a skip reason shows only in its tick's dialog.
"""

import json
from datetime import UTC, datetime
from typing import Any

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

from azaion_assets.defs.annotations.changed_annotations import changed_since, cutoff_of
from azaion_assets.defs.monitor.champion_monitor import (
    CHAMPION_ENTRY,
    MONITOR,
    NEW_IMAGES,
    NEW_SCORE,
    TEST_SCORE,
)
from azaion_assets.defs.release.champion import CHAMPION, promoted_partition
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
    Rules,
    Watch,
    decide,
)

RULE_TAG = "azaion/retrain_rule"

ACTIVE = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
SENSOR = "retraining_sensor"


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


def newest_dataset(instance: DagsterInstance) -> tuple[str | None, dict]:
    """The newest dataset's partition, and the cutoff after which annotations are new to it."""
    latest = instance.fetch_materializations(AssetKey("dataset"), limit=1).records
    if not latest:
        return None, {}
    return latest[0].partition_key, cutoff_of(instance, latest[0])


def current_champion(instance: DagsterInstance) -> str | None:
    latest = instance.fetch_materializations(CHAMPION, limit=1).records
    return promoted_partition(latest[0]) if latest else None


def latest_watch(instance: DagsterInstance, champion: str | None, cutoff: dict) -> Watch | None:
    """The champion's latest score on new data; stale when it scored another champion, or
    before the newest dataset was formed (that data has had its retraining since)."""
    latest = instance.fetch_materializations(MONITOR, limit=1).records
    if not latest or latest[0].asset_materialization is None:
        return None
    record = latest[0]
    meta = record.asset_materialization.metadata  # type: ignore[union-attr]

    def value(key: str) -> Any:
        entry = meta.get(key)
        return entry.value if entry is not None else None

    scored = str(value(CHAMPION_ENTRY))
    stale = None
    if scored != champion:
        stale = f"it scored champion {scored}, the champion is {champion}"
    elif record.timestamp < cutoff.get("after_timestamp", 0) or record.storage_id < cutoff.get(
        "after_storage_id", 0
    ):
        stale = "scored before the newest dataset formed"
    return Watch(
        scored, float(value(NEW_SCORE)), float(value(TEST_SCORE)), int(value(NEW_IMAGES)), stale
    )


def gather_facts(instance: DagsterInstance, today: str) -> Facts:
    last, cutoff = newest_dataset(instance)
    changed = changed_since(instance, cutoff)
    champion = current_champion(instance)
    return Facts(
        today=today,
        active_training=active_training(instance),
        dataset_today=dataset_today(instance, today),
        requested_today=requested_today(instance, today),
        last_dataset=last,
        new_validated=changed.validated,
        new_segments=changed.segments,
        champion=champion,
        watch=latest_watch(instance, champion, cutoff),
    )


DESCRIPTION = (
    "Starts a retraining (dataset, model, ONNX export, champion) when enough annotations changed "
    "since the last dataset, or the champion scores too far below its test score on them; once "
    "a day at most, never beside a training. Its cursor shows the last decision."
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
            s = load_settings(scopes=[Scope.TRAINING])
        except ConfigError as exc:
            return SkipReason(f"settings to fix: {exc.summary()}")
        rules = Rules(
            s.retrain_min_new_validated,
            s.retrain_degradation_margin,
            s.retrain_degradation_min_images,
        )
        now = datetime.now(UTC)
        today = now.strftime("%Y-%m-%d")
        facts = gather_facts(context.instance, today)
        decision = decide(facts, rules)
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
                RULE_TAG: decision.rule,
                "azaion/new_validated": str(facts.new_validated),
            },
        )

    return retraining_sensor
