"""``model_release_sensor``: ship each new champion to the edge, until it is shipped.

It watches materialisations of ``champion`` (an automatic promotion by ``onnx_model`` or a
manual one by ``promote_model``) and requests ``model_release_job`` for the newest one's
partition; older promotions are superseded, since only the model in production is released.

A release that failed for good after its own retries (a long API or CDN outage) is requested
again ``RELEASE_RETRY_MINUTES`` after the failure, for as long as that model is the champion and
has no release, so an outage heals without an operator. A failure that a retry cannot fix (a
refused login, a missing bucket: ``model_release`` tags the run) and a cancelled release are
left to an operator, and the ticks say so. When release is not configured (API
credentials or the model key missing), ticks say which variables are missing.

The cursor names the champion event a release was last requested for, as JSON
(``champion_event_storage_id``, and its partition for the reader); an older cursor, the bare
storage id, still reads.
"""

from __future__ import annotations

import json
import math
import time

from dagster import (
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

from azaion_assets.defs.instance_facts import champion_record, promoted_partition, released_after
from azaion_assets.defs.release.model_release import FAILURE_TAG, PERMANENT, RELEASE_JOB
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.config.settings_views import missing

SENSOR = "model_release_sensor"
_ENDED = (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


DESCRIPTION = (
    "Ships each newly promoted champion model to the edge devices (Azaion API and CDN). A "
    "release that failed is requested again after RELEASE_RETRY_MINUTES, while that model is "
    "still the champion."
)


def read_cursor(cursor: str | None) -> int | None:
    """The storage id of the champion event a release was last requested for, if any."""
    if not cursor:
        return None
    if cursor.isdigit():  # a cursor written before the fields were named
        return int(cursor)
    return int(json.loads(cursor)["champion_event_storage_id"])


def make_cursor(storage_id: int, partition: str) -> str:
    return json.dumps({"champion_event_storage_id": storage_id, "champion_partition": partition})


def build_model_release_sensor(interval_seconds: int) -> SensorDefinition:
    @sensor(
        name=SENSOR,
        job_name=RELEASE_JOB,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=DESCRIPTION,
    )
    def model_release_sensor(
        context: SensorEvaluationContext, azaion_settings: AzaionSettingsResource
    ):
        return evaluate(context, azaion_settings)

    return model_release_sensor


def evaluate(
    context: SensorEvaluationContext, azaion_settings: AzaionSettingsResource
) -> RunRequest | SkipReason:
    instance = context.instance
    newest = champion_record(instance)
    if newest is None:
        return SkipReason("no champion yet")
    partition = promoted_partition(newest)
    if partition is None:
        return SkipReason("newest champion event names no partition: nothing to release")
    try:
        settings = azaion_settings.load(Scope.RELEASE)
    except ConfigError as exc:
        return SkipReason(f"settings to fix: {exc.summary()}")
    if absent := missing(settings, {Scope.RELEASE}):
        names = ", ".join(problem.split(":")[0] for problem in absent)
        return SkipReason(f"champion {partition} not released: set {names}")
    cursor = make_cursor(newest.storage_id, partition)
    if read_cursor(context.cursor) != newest.storage_id:  # a promotion not yet acted on
        context.update_cursor(cursor)
        return RunRequest(
            run_key=f"release-{partition}-{newest.storage_id}", partition_key=partition
        )
    if context.cursor != cursor:  # an older bare cursor: named from now on
        context.update_cursor(cursor)
    return _retry(instance, partition, newest.storage_id, settings.release_retry_minutes)


def _retry(
    instance: DagsterInstance, partition: str, promoted_at: int, retry_minutes: float
) -> RunRequest | SkipReason:
    """After the request for this promotion: done, under way, or failed and due again."""
    if released_after(instance, partition, promoted_at):
        return SkipReason(f"champion {partition} is released")
    runs = instance.get_run_records(
        RunsFilter(job_name=RELEASE_JOB, tags={"dagster/partition": partition}), limit=1
    )
    if not runs or runs[0].dagster_run.status not in _ENDED:
        return SkipReason(f"release of champion {partition} is requested or running")
    last = runs[0]
    run = f"release run {last.dagster_run.run_id[:8]} of champion {partition}"
    if last.dagster_run.status == DagsterRunStatus.CANCELED:
        return SkipReason(f"{run} was cancelled: materialise model_release to release it")
    if last.dagster_run.tags.get(FAILURE_TAG) == PERMANENT:
        return SkipReason(
            f"{run} failed for good: fix what its log says, then materialise model_release"
        )
    ended = last.end_time or last.update_timestamp.timestamp()
    due = ended + retry_minutes * 60
    if time.time() < due:
        wait = math.ceil((due - time.time()) / 60)
        return SkipReason(f"{run} failed: requested again in {wait} min (RELEASE_RETRY_MINUTES)")
    return RunRequest(
        run_key=f"release-{partition}-{promoted_at}-after-{last.dagster_run.run_id[:8]}",
        partition_key=partition,
        tags={"azaion/release_retry_of": last.dagster_run.run_id},
    )
