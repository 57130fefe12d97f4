"""``health_sensor``: evaluates the freshness checks on a schedule, with no run of its own.

A check that only runs when someone clicks it cannot alarm; one evaluated by a run every few
minutes would fill the run list. The sensor records each check's verdict as an evaluation
whenever it changes (and on its first tick), so the asset pages and the checks list show the
current state; its cursor holds the last verdicts by check name.
"""

import json
import time

from dagster import (
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from azaion_assets.defs.health.health_checks import CHECKS, evaluation
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.config.config_error import ConfigError

SENSOR = "health_sensor"


def build_health_sensor(interval_seconds: int) -> SensorDefinition:
    @sensor(
        name=SENSOR,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Checks that annotations keep landing, that each champion is released and "
        "that models keep being trained. A failed check shows on the asset's page.",
    )
    def health_sensor(context: SensorEvaluationContext, azaion_settings: AzaionSettingsResource):
        return evaluate(context, azaion_settings)

    return health_sensor


def evaluate(
    context: SensorEvaluationContext, azaion_settings: AzaionSettingsResource
) -> SensorResult | SkipReason:
    try:
        azaion_settings.load()  # the thresholds: a bad one skips the tick, naming it
    except ConfigError as exc:
        return SkipReason(f"settings to fix: {exc.summary()}")
    before = json.loads(context.cursor) if context.cursor else {}
    now, events = {}, []
    for key, judge in CHECKS.items():
        health = judge(context.instance, azaion_settings, time.time())
        now[key.name] = {"passed": health.passed, "why": health.description}
        if before.get(key.name, {}).get("passed") != health.passed:
            events.append(evaluation(key, health))
    failing = [name for name, v in now.items() if not v["passed"]]
    if not events:
        context.update_cursor(json.dumps(now))
        return SkipReason(
            f"unchanged: {', '.join(failing) + ' failing' if failing else 'all pass'}"
        )
    return SensorResult(asset_events=events, cursor=json.dumps(now))
