"""``champion_monitor_sensor``: score the champion on new data once enough of it has arrived.

New means validated or changed since the champion was last scored, or, before its first score,
since its dataset was formed: counted from the instance (``instance_facts.changed_since``), as the
retraining sensor counts. It never starts a score beside a training (the score would wait for
the ``gpu`` pool anyway, and the training would then wait behind it).
"""

from __future__ import annotations

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
    ACTIVE,
    ANNOTATIONS,
    CHAMPION_ENTRY,
    DATASET,
    MONITOR,
    active_training,
    changed_since,
    current_champion,
    cutoff_of,
    value_of,
)
from azaion_assets.defs.monitor.champion_monitor import MONITOR_JOB
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.text import plural

SENSOR = "champion_monitor_sensor"
DESCRIPTION = (
    "Scores the champion on the annotations validated since its dataset, once enough new ones "
    "arrived since its last score; never beside a training."
)


def since_last_score(instance: DagsterInstance, champion: str) -> tuple[dict, str]:
    """The cutoff after which annotations are new to the champion's last score, and what it is:
    its last score, else the formation of its dataset, else (a dataset formed elsewhere) all."""
    scores = instance.fetch_materializations(MONITOR, limit=1).records
    if scores and value_of(scores[0], CHAMPION_ENTRY) == champion:
        return cutoff_of(instance, scores[0]), "its last score"
    formed = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=DATASET, asset_partitions=[champion]), limit=1
    ).records
    if formed:
        return cutoff_of(instance, formed[0]), f"dataset {champion}"
    return {}, "the first ingest"


def scoring_now(instance: DagsterInstance) -> str | None:
    records = instance.get_run_records(RunsFilter(job_name=MONITOR_JOB, statuses=ACTIVE), limit=1)
    if not records:
        return None
    run = records[0].dagster_run
    return f"run {run.run_id[:8]} is {run.status.value}"


def build_champion_monitor_sensor(interval_seconds: int) -> SensorDefinition:
    @sensor(
        name=SENSOR,
        job_name=MONITOR_JOB,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=DESCRIPTION,
    )
    def champion_monitor_sensor(
        context: SensorEvaluationContext, azaion_settings: AzaionSettingsResource
    ):
        try:
            wanted = azaion_settings.load(Scope.TRAINING).monitor_min_new_validated
        except ConfigError as exc:
            return SkipReason(f"settings to fix: {exc.summary()}")
        instance = context.instance
        champion = current_champion(instance)
        if champion is None:
            return SkipReason("no champion yet: nothing to score")
        busy = active_training(instance)
        if busy is not None:
            return SkipReason(f"{busy}; scoring waits")
        running = scoring_now(instance)
        if running is not None:
            return SkipReason(f"champion_monitor {running}")
        cutoff, since = since_last_score(instance, champion)
        changed = changed_since(instance, cutoff)
        if changed.validated < wanted:
            return SkipReason(
                f"{changed.validated} of {plural(wanted, 'new validated annotation')} since "
                f"{since} (champion {champion}): below MONITOR_MIN_NEW_VALIDATED"
            )
        context.log.info(f"{changed.validated} new validated annotations: scoring {champion}")
        latest = instance.fetch_materializations(ANNOTATIONS, limit=1).records
        mark = latest[0].storage_id if latest else 0
        return RunRequest(
            run_key=f"monitor-{champion}-{mark}",
            tags={"azaion/trigger": SENSOR, "azaion/new_validated": str(changed.validated)},
        )

    return champion_monitor_sensor
