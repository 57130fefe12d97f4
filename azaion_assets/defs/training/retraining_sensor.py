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

from dagster import (
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from azaion_assets.defs.instance_facts import (
    DATASET,
    active_training,
    changed_since,
    current_champion,
    latest_watch,
    newest_dataset,
)
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.defs.training.retraining_job import RETRAINING_JOB
from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.training.retrain_policy import (
    TRIGGER_TAG,
    Facts,
    Rules,
    decide,
)

RULE_TAG = "azaion/retrain_rule"

SENSOR = "retraining_sensor"


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
        AssetRecordsFilter(asset_key=DATASET, asset_partitions=[today]), limit=1
    )
    if not result.records:
        return None
    record = result.records[0]
    at = datetime.fromtimestamp(record.timestamp, UTC).strftime("%H:%M UTC")
    return f"formed at {at} by run {record.run_id[:8]}"


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
    def retraining_sensor(
        context: SensorEvaluationContext, azaion_settings: AzaionSettingsResource
    ):
        try:
            settings = azaion_settings.load(Scope.TRAINING)
        except ConfigError as exc:
            return SkipReason(f"settings to fix: {exc.summary()}")
        rules = Rules(
            settings.retrain_min_new_validated,
            settings.retrain_degradation_margin,
            settings.retrain_degradation_min_images,
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
