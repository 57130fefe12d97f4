"""Freshness alarms as asset checks, so a stale pipeline shows red where the operator looks.

Three ways the pipeline goes quiet without a failed run to say so: the ingest stops while the
stream fills (a stopped sensor, a dead daemon, a broker it cannot reach), a promoted champion is
never released, and no model is trained for days. Each is a check on the asset it concerns,
with its threshold a setting (``HEALTH_*``); ``health_sensor`` evaluates them on a schedule and
records a verdict whenever one changes, and each can be executed from the asset's page.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    DagsterInstance,
    EventLogRecord,
    asset_check,
)

from azaion_assets.defs.instance_facts import (
    ANNOTATIONS,
    CHAMPION,
    MODEL,
    landed_through,
    promoted_partition,
    released_after,
)
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.config.settings_views import missing
from azaion_assets.lib.stream.client import probe_tail
from azaion_assets.lib.stream.stream_connection import StreamError, StreamTarget
from azaion_assets.lib.text import plural


@dataclass(frozen=True)
class Health:
    passed: bool
    description: str
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR


def _age(
    instance: DagsterInstance, key: AssetKey, now: float, ascending: bool = False
) -> tuple[float | None, EventLogRecord | None]:
    """Seconds since ``key``'s newest (or first) materialisation, and that record."""
    records = instance.fetch_materializations(key, limit=1, ascending=ascending).records
    if not records:
        return None, None
    return now - records[0].timestamp, records[0]


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def annotations_health(
    instance: DagsterInstance, settings: Settings, now: float, target: StreamTarget | None
) -> Health:
    limit = settings.health_stream_quiet_hours * 3600
    age, _ = _age(instance, ANNOTATIONS, now)
    if age is not None and age < limit:
        return Health(True, f"last partition landed {_hours(age)} ago")
    landed = landed_through(instance)
    if target is None:
        return Health(False, "nothing landed lately and the stream is not configured")
    try:
        tail = asyncio.run(probe_tail(target))
    except StreamError as exc:
        return Health(False, f"stream unreachable and nothing landed lately: {exc}")
    since = "nothing ever landed" if age is None else f"nothing landed for {_hours(age)}"
    if tail is None or tail <= landed:
        return Health(True, f"{since}, and the stream holds nothing newer (quiet, not stuck)")
    waiting = plural(tail - landed, "offset")
    return Health(False, f"{waiting} waiting in the stream; {since}")


def champion_health(instance: DagsterInstance, settings: Settings, now: float) -> Health:
    age, record = _age(instance, CHAMPION, now)
    if record is None:
        return Health(True, "no champion yet")
    partition = promoted_partition(record) or "?"
    if released_after(instance, partition, record.storage_id):
        return Health(True, f"champion {partition} is released")
    overdue = settings.health_release_overdue_minutes * 60
    if age is not None and age < overdue:
        return Health(True, f"champion {partition} promoted {age / 60:.0f} min ago; releasing")
    absent = missing(settings, {Scope.RELEASE})
    why = f"release is not configured ({'; '.join(absent)})" if absent else "see model_release"
    return Health(False, f"champion {partition} unreleased for {_hours(age or 0)}: {why}")


def training_health(instance: DagsterInstance, settings: Settings, now: float) -> Health:
    limit = settings.health_training_stale_days * 86400
    age, _ = _age(instance, MODEL, now)
    if age is not None and age < limit:
        return Health(True, f"last model trained {age / 86400:.1f} days ago")
    if age is None:
        first, _ = _age(instance, ANNOTATIONS, now, ascending=True)
        if first is None or first < limit:
            return Health(True, "no model yet; the stream is young")
        return Health(False, f"no model trained in the {first / 86400:.0f} days since ingest began")
    return Health(False, f"no model trained for {age / 86400:.1f} days")


def _stream_target(azaion_settings: AzaionSettingsResource) -> StreamTarget | None:
    try:
        return StreamTarget.from_settings(azaion_settings.load(Scope.STREAM))
    except ConfigError:
        return None


# A judge reads the settings it needs through the resource: the thresholds are common to every
# scope, and the stream's own variables are judged with the stream's scope.
Judge = Callable[[DagsterInstance, AzaionSettingsResource, float], Health]
CHECKS: dict[AssetCheckKey, Judge] = {
    AssetCheckKey(ANNOTATIONS, "annotations_arriving"): lambda i, r, now: annotations_health(
        i, r.load(), now, _stream_target(r)
    ),
    AssetCheckKey(CHAMPION, "champion_released"): lambda i, r, now: champion_health(
        i, r.load(), now
    ),
    AssetCheckKey(MODEL, "training_recent"): lambda i, r, now: training_health(i, r.load(), now),
}


def evaluation(key: AssetCheckKey, health: Health) -> AssetCheckEvaluation:
    return AssetCheckEvaluation(
        asset_key=key.asset_key,
        check_name=key.name,
        passed=health.passed,
        severity=health.severity,
        description=health.description,
        metadata={"verdict": health.description},
    )


def _check(key: AssetCheckKey, doc: str):
    def run(
        context: AssetCheckExecutionContext, azaion_settings: AzaionSettingsResource
    ) -> AssetCheckResult:
        health = CHECKS[key](context.instance, azaion_settings, time.time())
        return AssetCheckResult(
            passed=health.passed,
            severity=health.severity,
            description=health.description,
            metadata={"verdict": health.description},
        )

    return asset_check(asset=key.asset_key, name=key.name, blocking=False, description=doc)(run)


def build_health_checks():
    docs = {
        "annotations_arriving": "No annotation partition for HEALTH_STREAM_QUIET_HOURS while "
        "the stream holds newer messages",
        "champion_released": "The champion is not released HEALTH_RELEASE_OVERDUE_MINUTES "
        "after its promotion",
        "training_recent": "No model trained for HEALTH_TRAINING_STALE_DAYS",
    }
    return [_check(key, docs[key.name]) for key in CHECKS]
