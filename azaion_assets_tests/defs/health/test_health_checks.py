"""The freshness alarms on a real instance and a real broker: each passes while things move and
fails, saying why, once its threshold passes; the sensor records only changes."""

import asyncio
import json
import time

import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    SensorResult,
    SkipReason,
    build_sensor_context,
)

from azaion_assets.defs.health import health_checks
from azaion_assets.defs.health.health_checks import (
    annotations_health,
    champion_health,
    training_health,
)
from azaion_assets.defs.health.health_sensor import build_health_sensor
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.dev.messages import Author, synthetic
from azaion_assets.lib.config.sources import load_settings
from azaion_assets.lib.stream.client import probe_tail, publish
from azaion_assets.lib.stream.events import Role
from azaion_assets.lib.stream.offsets import OffsetRange

SENSOR_RESOURCES = {"azaion_settings": AzaionSettingsResource()}

HOUR, DAY = 3600.0, 86400.0


def _tick(sensor, instance: DagsterInstance, cursor: str | None = None):
    """The verdicts a tick recorded and its cursor; ``{}`` for a skip."""
    result = sensor(
        build_sensor_context(resources=SENSOR_RESOURCES, instance=instance, cursor=cursor)
    )
    if isinstance(result, SkipReason):
        return {}, cursor
    assert isinstance(result, SensorResult) and result.cursor is not None
    events = [e for e in result.asset_events if isinstance(e, AssetCheckEvaluation)]
    return {e.check_name: e.passed for e in events}, result.cursor


def _land(instance: DagsterInstance, key: str, partition: str | None = None, meta=None) -> None:
    instance.report_runless_asset_event(
        AssetMaterialization(AssetKey(key), partition=partition, metadata=meta or {})
    )


@pytest.fixture
def settings(root, monkeypatch):
    monkeypatch.setenv("HEALTH_STREAM_QUIET_HOURS", "2")
    monkeypatch.setenv("HEALTH_RELEASE_OVERDUE_MINUTES", "30")
    monkeypatch.setenv("HEALTH_TRAINING_STALE_DAYS", "3")
    return load_settings(scopes=())


def test_a_quiet_stream_passes_and_a_stuck_ingest_fails(stream_env, instance, settings):
    author = Author(Role.VALIDATOR, "v@azaion.com")
    asyncio.run(publish(stream_env, list(synthetic(4, author, prefix="a", width=16))))
    tail = asyncio.run(probe_tail(stream_env))
    assert tail is not None
    now = time.time()
    stuck = annotations_health(instance, settings, now, stream_env)
    assert not stuck.passed and stuck.description.startswith(f"{tail + 1} offsets waiting")

    _land(instance, "annotations", OffsetRange(0, tail).key)
    assert annotations_health(instance, settings, now, stream_env).passed  # just landed
    later = annotations_health(instance, settings, now + 3 * HOUR, stream_env)
    assert later.passed and "quiet, not stuck" in later.description  # nothing newer

    asyncio.run(publish(stream_env, list(synthetic(2, author, prefix="b", width=16))))
    behind = annotations_health(instance, settings, now + 3 * HOUR, stream_env)
    assert not behind.passed and behind.description.startswith("2 offsets waiting")
    assert "nothing landed for 3.0 h" in behind.description
    assert not annotations_health(instance, settings, now + 3 * HOUR, None).passed


def test_an_unreleased_champion_fails_after_the_overdue_minutes(instance, settings):
    now = time.time()
    assert champion_health(instance, settings, now).passed  # no champion yet
    _land(instance, "champion", None, {"partition": "2026-11-22"})
    assert champion_health(instance, settings, now + 60).passed  # releasing
    overdue = champion_health(instance, settings, now + 31 * 60)
    assert not overdue.passed and overdue.description.startswith("champion 2026-11-22 unreleased")
    assert "MODEL_ENCRYPTION_KEY" in overdue.description  # release is not configured here
    _land(instance, "model_release", "2026-11-22")
    assert champion_health(instance, settings, now + 31 * 60).passed
    _land(instance, "champion", None, {"partition": "2026-11-23"})  # a newer promotion
    assert not champion_health(instance, settings, now + 31 * 60).passed


def test_no_training_for_days_fails(instance, settings):
    now = time.time()
    assert training_health(instance, settings, now).passed  # nothing ingested, nothing due
    _land(instance, "annotations", "000000000000-000000000001")
    assert training_health(instance, settings, now + 2 * DAY).passed  # the stream is young
    assert not training_health(instance, settings, now + 4 * DAY).passed
    _land(instance, "model", "2026-11-22")
    assert training_health(instance, settings, now + DAY).passed
    stale = training_health(instance, settings, now + 3.5 * DAY)
    assert not stale.passed and stale.description == "no model trained for 3.5 days"


def test_the_sensor_records_a_verdict_only_when_it_changes(instance, settings, monkeypatch):
    monkeypatch.setattr(health_checks, "_stream_target", lambda s: None)  # no broker here
    sensor = build_health_sensor(60)
    first, cursor = _tick(sensor, instance)
    assert first == {  # every verdict on the first tick; nothing ever landed
        "annotations_arriving": False,
        "champion_released": True,
        "training_recent": True,
    }
    assert cursor is not None and json.loads(cursor)["training_recent"]["passed"] is True
    assert _tick(sensor, instance, cursor)[0] == {}  # a skip: nothing changed
    _land(instance, "annotations", "000000000000-000000000001")
    landed, cursor = _tick(sensor, instance, cursor)
    assert landed == {"annotations_arriving": True}
    real_time = time.time
    monkeypatch.setattr(health_checks.time, "time", lambda: real_time() + 5 * DAY)
    changed, _ = _tick(sensor, instance, cursor)
    assert changed == {"annotations_arriving": False, "training_recent": False}
