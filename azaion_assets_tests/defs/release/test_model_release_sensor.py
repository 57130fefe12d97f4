"""``model_release_sensor`` with build_sensor_context on a real SQLite instance: a promotion
(a ``champion`` materialisation) becomes one release request for its partition, and a release
that failed for good is requested again after ``RELEASE_RETRY_MINUTES``, unless a retry cannot
help (a permanent failure, tagged by the asset) or an operator cancelled it."""

import json

import pytest
from dagster import (
    AssetMaterialization,
    DagsterRunStatus,
    RunRequest,
    SkipReason,
    build_sensor_context,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.utils import make_new_run_id

from azaion_assets.defs.instance_facts import CHAMPION
from azaion_assets.defs.release.model_release import FAILURE_TAG, PERMANENT, RELEASE_JOB
from azaion_assets.defs.release.model_release_sensor import build_model_release_sensor
from azaion_assets.defs.resources import AzaionSettingsResource

SENSOR_RESOURCES = {"azaion_settings": AzaionSettingsResource()}

SENSOR = build_model_release_sensor(30)


def promote(instance, partition: str) -> None:
    instance.report_runless_asset_event(
        AssetMaterialization(CHAMPION, metadata={"partition": partition, "promotion": "manual"})
    )


def tick(instance, cursor: str | None = None):
    context = build_sensor_context(resources=SENSOR_RESOURCES, instance=instance, cursor=cursor)
    return SENSOR(context), context.cursor


def skip(result) -> str:
    assert isinstance(result, SkipReason), result
    return result.skip_message or ""


def release_run(
    instance, partition: str, status: DagsterRunStatus, tags: dict[str, str] | None = None
) -> str:
    run = DagsterRun(
        job_name=RELEASE_JOB,
        run_id=make_new_run_id(),
        tags={"dagster/partition": partition, **(tags or {})},
        status=status,
    )
    return instance.add_run(run).run_id


def test_a_promotion_is_requested_once(instance, release_env):
    assert skip(tick(instance)[0]) == "no champion yet"
    promote(instance, "2026-11-20")
    request, cursor = tick(instance)
    assert isinstance(request, RunRequest)
    assert request.partition_key == "2026-11-20" and cursor is not None
    assert request.run_key and "2026-11-20" in request.run_key
    again, _ = tick(instance, cursor)
    assert skip(again) == "release of champion 2026-11-20 is requested or running"
    release_run(instance, "2026-11-20", DagsterRunStatus.STARTED)
    assert "requested or running" in skip(tick(instance, cursor)[0])
    instance.report_runless_asset_event(
        AssetMaterialization("model_release", partition="2026-11-20")
    )
    assert skip(tick(instance, cursor)[0]) == "champion 2026-11-20 is released"


def test_only_the_newest_of_several_promotions_is_released(instance, release_env):
    for partition in ("2026-11-20", "2026-11-21", "2026-11-19"):  # the last: a manual rollback
        promote(instance, partition)
    request, _ = tick(instance)
    assert isinstance(request, RunRequest) and request.partition_key == "2026-11-19"


def test_a_failed_release_is_requested_again_after_the_retry_delay(
    instance, release_env, monkeypatch
):
    promote(instance, "2026-11-20")
    _, cursor = tick(instance)
    failed = release_run(instance, "2026-11-20", DagsterRunStatus.FAILURE)
    waiting = skip(tick(instance, cursor)[0])
    assert waiting == (
        f"release run {failed[:8]} of champion 2026-11-20 failed: requested again in 30 min "
        "(RELEASE_RETRY_MINUTES)"
    )
    monkeypatch.setenv("RELEASE_RETRY_MINUTES", "0.0001")
    retry, cursor_after = tick(instance, cursor)
    assert isinstance(retry, RunRequest) and retry.partition_key == "2026-11-20"
    assert retry.tags["azaion/release_retry_of"] == failed and cursor_after == cursor
    assert retry.run_key and failed[:8] in retry.run_key  # a new key for each failed attempt


@pytest.mark.parametrize(
    ("status", "tags", "said"),
    [
        (DagsterRunStatus.CANCELED, {}, "was cancelled: "),
        (DagsterRunStatus.FAILURE, {FAILURE_TAG: PERMANENT}, "failed for good: fix what its log"),
    ],
    ids=["cancelled", "permanent-failure"],
)
def test_a_cancelled_or_permanently_failed_release_is_left_to_an_operator(
    instance, release_env, monkeypatch, status, tags, said
):
    promote(instance, "2026-11-20")
    _, cursor = tick(instance)
    ended = release_run(instance, "2026-11-20", status, tags)
    monkeypatch.setenv("RELEASE_RETRY_MINUTES", "0.0001")  # a plain failure would be due now
    message = skip(tick(instance, cursor)[0])
    assert message.startswith(f"release run {ended[:8]} of champion 2026-11-20 {said}")
    assert "materialise model_release" in message
    assert len(message) <= 120
    promote(instance, "2026-11-20")  # promoted again: a new request, whatever happened before
    again, _ = tick(instance, cursor)
    assert isinstance(again, RunRequest) and again.partition_key == "2026-11-20"


def test_without_release_settings_it_names_them_and_waits(instance, monkeypatch):
    promote(instance, "2026-11-20")
    skipped, cursor = tick(instance)
    assert cursor is None and skip(skipped) == (
        "champion 2026-11-20 not released: set AZAION_API_EMAIL, AZAION_API_PASSWORD, "
        "MODEL_ENCRYPTION_KEY"
    )
    monkeypatch.setenv("AZAION_API_EMAIL", "e@x")
    monkeypatch.setenv("AZAION_API_PASSWORD", "pw")
    monkeypatch.setenv("MODEL_ENCRYPTION_KEY", "k" * 16)
    request, cursor = tick(instance, cursor)
    assert isinstance(request, RunRequest) and request.partition_key == "2026-11-20"


def test_the_cursor_names_the_champion_event_it_requested_a_release_for(instance, release_env):
    promote(instance, "2026-11-20")
    request, cursor = tick(instance)
    assert isinstance(request, RunRequest) and cursor is not None
    (record,) = instance.fetch_materializations(CHAMPION, limit=1).records
    assert json.loads(cursor) == {
        "champion_event_storage_id": record.storage_id,
        "champion_partition": "2026-11-20",
    }


def test_an_older_bare_cursor_still_reads_and_is_named_from_then_on(instance, release_env):
    promote(instance, "2026-11-20")
    (record,) = instance.fetch_materializations(CHAMPION, limit=1).records
    bare = str(record.storage_id)  # what the sensor stored before its fields were named
    result, cursor = tick(instance, bare)
    assert "requested or running" in skip(result)  # the same promotion: not requested again
    assert cursor is not None and json.loads(cursor)["champion_event_storage_id"] == int(bare)
    promote(instance, "2026-11-21")
    request, _ = tick(instance, bare)
    assert isinstance(request, RunRequest) and request.partition_key == "2026-11-21"


def test_an_invalid_release_setting_is_a_one_line_skip_that_names_it(
    instance, release_env, monkeypatch
):
    promote(instance, "2026-11-20")
    monkeypatch.setenv("RELEASE_RETRY_MINUTES", "0")
    assert skip(tick(instance)[0]) == "settings to fix: RELEASE_RETRY_MINUTES: must be more than 0"
