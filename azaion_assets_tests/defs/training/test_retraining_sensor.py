"""The retraining sensor, evaluated with build_sensor_context against a real SQLite instance.

The instance's event log holds what the sensor reads in production: annotation and dataset
materialisations (recorded here as runless events with the same metadata) and training runs.
"""

import json
from datetime import UTC, datetime

import pytest
from dagster import (
    AssetMaterialization,
    DagsterRunStatus,
    RunRequest,
    SkipReason,
    build_sensor_context,
)
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.utils import make_new_run_id

from azaion_assets.defs.training import retraining_sensor
from azaion_assets.defs.training.retraining_sensor import build_retraining_sensor

SENSOR = build_retraining_sensor(60)
ORIGIN = RemoteJobOrigin(
    RemoteRepositoryOrigin(
        InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="azaion_assets.definitions")),
        "__repository__",
    ),
    "retraining_job",
)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TODAY = NOW.strftime("%Y-%m-%d")


class _FrozenClock(datetime):
    """The sensor's clock at NOW, so a run that crosses midnight UTC still agrees on today."""

    @classmethod
    def now(cls, tz=None):
        return NOW.astimezone(tz)


@pytest.fixture(autouse=True)
def threshold(monkeypatch):
    monkeypatch.setenv("RETRAIN_MIN_NEW_VALIDATED", "100")
    monkeypatch.setattr(retraining_sensor, "datetime", _FrozenClock)


def _tick(instance) -> RunRequest | SkipReason:
    result = SENSOR(build_sensor_context(instance=instance))
    assert isinstance(result, (RunRequest, SkipReason)), result
    return result


def _skip_reason(instance) -> str:
    result = _tick(instance)
    assert isinstance(result, SkipReason), f"expected a skip, got {result}"
    return result.skip_message or ""


def _annotations(instance, key: str, validated: int, reused: bool = False) -> None:
    metadata = {"validated": validated, "reused_earlier_run": reused}
    instance.report_runless_asset_event(
        AssetMaterialization("annotations", partition=key, metadata=metadata)
    )


def _run(instance, tags: dict[str, str], status: DagsterRunStatus) -> DagsterRun:
    """A run record as the run queue and launcher leave it (none needs to execute here)."""
    run = DagsterRun(
        job_name="retraining_job",
        run_id=make_new_run_id(),
        tags=tags,
        status=status,
        remote_job_origin=ORIGIN,  # queued runs must say where they would be launched from
    )
    return instance.add_run(run)


def _dataset(instance, day: str) -> None:
    instance.report_runless_asset_event(AssetMaterialization("dataset", partition=day))


def test_without_new_data_the_tick_says_so(instance):
    assert _skip_reason(instance) == (
        "0 of 100 new validated annotations: below RETRAIN_MIN_NEW_VALIDATED "
        "(0 partitions, no dataset yet)"
    )


def test_enough_new_validated_data_requests_todays_retraining(instance):
    _annotations(instance, "000000000000-000000000999", 60)
    assert _skip_reason(instance).startswith("60 of 100 new validated annotations: below ")
    assert "(1 partition, no dataset yet)" in _skip_reason(instance)
    _annotations(instance, "000000001000-000000001999", 0, reused=True)
    _annotations(instance, "000000002000-000000002999", 45)
    request = _tick(instance)
    assert isinstance(request, RunRequest)
    assert request.partition_key == TODAY and request.run_key == f"retrain-{TODAY}"
    assert request.tags["azaion/trigger"] == "retraining_sensor"
    assert request.tags["azaion/new_validated"] == "105"


def test_only_data_since_the_newest_dataset_counts(instance):
    _annotations(instance, "000000000000-000000000999", 500)
    _dataset(instance, "2026-01-01")
    _annotations(instance, "000000001000-000000001999", 30)
    assert _skip_reason(instance) == (
        "30 of 100 new validated annotations: below RETRAIN_MIN_NEW_VALIDATED "
        "(1 partition since dataset 2026-01-01)"
    )


def test_at_most_one_dataset_a_day(instance):
    _dataset(instance, TODAY)
    _annotations(instance, "000000000000-000000000999", 500)
    reason = _skip_reason(instance)
    assert reason.startswith(f"dataset {TODAY} already formed at ")
    assert reason.endswith("one a day; launch retraining_job to force another")


def test_no_request_while_a_training_is_queued_or_running(instance):
    _annotations(instance, "000000000000-000000000999", 500)
    for status in (DagsterRunStatus.QUEUED, DagsterRunStatus.STARTED):
        run = _run(instance, {"azaion/stage": "train"}, status)
        reason = _skip_reason(instance)
        assert reason == (
            f"training in progress: run {run.run_id[:8]} is {status.value}; "
            "500 new validated annotations waiting"
        )
        instance.report_run_failed(run)
    # Finished training runs do not block; an ingest run never did.
    _run(instance, {"azaion/stage": "ingest"}, DagsterRunStatus.STARTED)
    assert isinstance(_tick(instance), RunRequest)


def test_a_training_outside_the_job_is_seen_through_the_gpu_pool(instance):
    _annotations(instance, "000000000000-000000000999", 500)
    storage = instance.event_log_storage
    storage.set_concurrency_slots("gpu", 1)
    claim = storage.claim_concurrency_slot("gpu", "adhocrun-0001", "model")
    assert claim.is_claimed
    reason = _skip_reason(instance)
    assert reason.startswith("training in progress: run adhocrun holds or awaits the gpu pool")
    storage.free_concurrency_slot_for_step("adhocrun-0001", "model")
    assert isinstance(_tick(instance), RunRequest)


def test_a_failed_automatic_run_is_not_requested_again_the_same_day(instance):
    _annotations(instance, "000000000000-000000000999", 500)
    tags = {"azaion/trigger": "retraining_sensor", "dagster/partition": TODAY}
    run = _run(instance, tags, DagsterRunStatus.FAILURE)
    assert _skip_reason(instance) == (
        f"today's retraining run {run.run_id[:8]} ended FAILURE: one a day; "
        "re-execute it or launch retraining_job"
    )


def test_a_configuration_problem_is_a_skip_that_names_it(instance, monkeypatch):
    monkeypatch.setenv("RETRAIN_MIN_NEW_VALIDATED", "0")
    reason = _skip_reason(instance)
    assert reason == "settings to fix: RETRAIN_MIN_NEW_VALIDATED: must be at least 1"


def test_the_cursor_shows_the_last_decision_and_when(instance):
    context = build_sensor_context(instance=instance)
    skipped = SENSOR(context)
    assert isinstance(skipped, SkipReason)
    shown = json.loads(context.cursor or "{}")
    assert shown["last_decision"] == skipped.skip_message and shown["at"].startswith("20")
    _annotations(instance, "000000000000-000000000999", 150)
    context = build_sensor_context(instance=instance, cursor=context.cursor)
    assert isinstance(SENSOR(context), RunRequest)
    assert json.loads(context.cursor or "{}")["last_decision"].startswith("150 new validated")
