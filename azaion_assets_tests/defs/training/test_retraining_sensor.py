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
    MetadataValue,
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

from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.defs.training import retraining_sensor
from azaion_assets.defs.training.retraining_sensor import build_retraining_sensor

SENSOR_RESOURCES = {"azaion_settings": AzaionSettingsResource()}

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
    result = SENSOR(build_sensor_context(resources=SENSOR_RESOURCES, instance=instance))
    assert isinstance(result, (RunRequest, SkipReason)), result
    return result


def _skip_reason(instance) -> str:
    result = _tick(instance)
    assert isinstance(result, SkipReason), f"expected a skip, got {result}"
    return result.skip_message or ""


def _annotations(
    instance, key: str, validated: int = 0, *, names=None, left=(), legacy: bool = False
) -> None:
    """A partition as ``annotations`` records it: the names it left in data/ changed (made up
    from ``key`` unless given) and the names it took out; ``legacy``: counts only, as
    recorded before the names were kept."""
    names = [f"{key}/{i}" for i in range(validated)] if names is None else names
    metadata: dict = {"validated": len(names), "reused_earlier_run": False}
    if not legacy:
        metadata["validated_names"] = MetadataValue.json(list(names))
        metadata["left_data_names"] = MetadataValue.json(list(left))
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
        "neither rule: count 0 of 100 (0 ingest segments, no dataset yet); "
        "degradation: no champion yet"
    )


def test_enough_new_validated_data_requests_todays_retraining(instance):
    _annotations(instance, "000000000000-000000000999", 60)
    assert _skip_reason(instance).startswith(
        "neither rule: count 60 of 100 (1 ingest segment, no dataset yet); "
    )
    _annotations(instance, "000000001000-000000001999", 0)  # a re-run: nothing new
    _annotations(instance, "000000002000-000000002999", 45)
    request = _tick(instance)
    assert isinstance(request, RunRequest)
    assert request.partition_key == TODAY and request.run_key == f"retrain-{TODAY}"
    assert request.tags["azaion/trigger"] == "retraining_sensor"
    assert request.tags["azaion/retrain_rule"] == "count"
    assert request.tags["azaion/new_validated"] == "105"


def test_only_data_since_the_newest_dataset_counts(instance):
    _annotations(instance, "000000000000-000000000999", 500)
    _dataset(instance, "2026-01-01")
    _annotations(instance, "000000001000-000000001999", 30)
    assert _skip_reason(instance).startswith(
        "neither rule: count 30 of 100 (1 ingest segment since dataset 2026-01-01); "
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
    assert reason.startswith("gpu busy: unknown job run adhocrun holds or awaits the gpu pool")
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
    context = build_sensor_context(resources=SENSOR_RESOURCES, instance=instance)
    skipped = SENSOR(context)
    assert isinstance(skipped, SkipReason)
    shown = json.loads(context.cursor or "{}")
    assert shown["last_decision"] == skipped.skip_message and shown["at"].startswith("20")
    _annotations(instance, "000000000000-000000000999", 150)
    context = build_sensor_context(
        resources=SENSOR_RESOURCES, instance=instance, cursor=context.cursor
    )
    assert isinstance(SENSOR(context), RunRequest)
    assert json.loads(context.cursor or "{}")["last_decision"].startswith(
        "count: 150 new validated"
    )


def test_distinct_names_count_not_events(instance):
    _annotations(instance, "000000000000-000000000999", names=["a", "b", "c"])
    _annotations(instance, "000000001000-000000001999", names=["a", "b"])  # re-sent, edited
    _annotations(instance, "000000002000-000000002999", names=["d"], left=["c"])  # c deleted
    _annotations(instance, "000000003000-000000003999", 4, legacy=True)  # counts as recorded
    assert _skip_reason(instance).startswith("neither rule: count 7 of 100 (4 ingest segments, ")


def test_an_open_partition_counts_each_segment_once_and_only_after_the_dataset(instance):
    """A partition filled by several runs has a materialisation a run: the names of each
    segment count once, an edit in a later segment is not a second name, and the segments
    recorded before the dataset do not count."""
    block = "000000000000-000000000999"
    _annotations(instance, block, names=["a", "b"])
    _dataset(instance, "2026-01-01")
    _annotations(instance, block, names=["c", "d"])
    _annotations(instance, block, names=["d", "e"], left=["c"])  # d edited, c deleted
    assert _skip_reason(instance).startswith(
        "neither rule: count 2 of 100 (2 ingest segments since dataset 2026-01-01); "
    )


def _champion(instance, day: str) -> None:
    instance.report_runless_asset_event(
        AssetMaterialization("champion", metadata={"partition": day})
    )


def _score(instance, champion: str, new: float, test: float, images: int) -> None:
    metadata = {
        "champion": champion,
        "new_data_mAP50-95": new,
        "champion_test_mAP50-95": test,
        "new_images": images,
    }
    instance.report_runless_asset_event(AssetMaterialization("champion_monitor", metadata=metadata))


def test_a_champion_behind_on_new_data_is_retrained_and_the_rule_is_named(instance, monkeypatch):
    monkeypatch.setenv("RETRAIN_DEGRADATION_MARGIN", "0.05")
    monkeypatch.setenv("RETRAIN_DEGRADATION_MIN_IMAGES", "40")
    _dataset(instance, "2026-11-18")
    _champion(instance, "2026-11-18")
    _annotations(instance, "000000000000-000000000999", 60)
    assert _skip_reason(instance).endswith(
        "degradation: no score of champion 2026-11-18 on new data yet"
    )
    _score(instance, "2026-11-18", new=0.42, test=0.45, images=60)
    assert _skip_reason(instance) == (
        "neither rule: count 60 of 100 (1 ingest segment since dataset 2026-11-18); degradation: "
        "champion 2026-11-18 mAP50-95 0.420 on 60 new images vs 0.450 test, "
        "0.030 behind <= margin 0.05"
    )
    _score(instance, "2026-11-18", new=0.30, test=0.45, images=60)
    request = _tick(instance)
    assert isinstance(request, RunRequest), request
    assert request.tags["azaion/retrain_rule"] == "degradation"
    # A score of another champion, or one older than the newest dataset, decides nothing.
    _champion(instance, "2026-11-19")
    assert "no current score (it scored champion 2026-11-18, the champion is 2026-11-19)" in (
        _skip_reason(instance)
    )
    _score(instance, "2026-11-19", new=0.10, test=0.45, images=60)
    assert isinstance(_tick(instance), RunRequest)
    _dataset(instance, "2026-11-19")
    assert _skip_reason(instance).endswith(
        "degradation: no current score (scored before the newest dataset formed)"
    )
