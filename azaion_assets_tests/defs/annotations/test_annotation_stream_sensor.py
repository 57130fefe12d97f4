"""The stream sensor, evaluated against a real broker and a real Dagster instance."""

import asyncio
import json

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    SensorResult,
    SkipReason,
    build_sensor_context,
)

from azaion_assets.defs.annotations.annotation_stream_sensor import (
    build_annotation_stream_sensor,
    read_cursor,
)
from azaion_assets.defs.annotations.ingest_job import INGEST_JOB
from azaion_assets.defs.partitions import ANNOTATION_BATCHES
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.dev.messages import Author, synthetic
from azaion_assets.lib.stream.client import probe_tail, publish
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets_tests.conftest import assert_tiles, requested_keys

SENSOR = build_annotation_stream_sensor(30)


def _tick(instance, cursor=None) -> SensorResult | SkipReason:
    context = build_sensor_context(
        instance=instance, cursor=cursor, resources={"settings": AzaionSettingsResource()}
    )
    result = SENSOR(context)
    assert isinstance(result, (SensorResult, SkipReason)), result
    if isinstance(result, SensorResult):  # as the daemon would: register what it asked for
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    return result


def _publish(stream, count, seed=0) -> int:
    asyncio.run(publish(stream, synthetic(count, Author(), seed=seed, width=32, height=32)))
    tail = asyncio.run(probe_tail(stream))
    assert tail is not None
    return tail


def test_new_offsets_become_partitions_and_one_run_for_them(stream_env, instance, monkeypatch):
    monkeypatch.setenv("STREAM_BATCH_MESSAGES", "10")
    tail = _publish(stream_env, 25)
    result = _tick(instance)
    assert isinstance(result, SensorResult)
    (request,) = result.run_requests or []
    keys = requested_keys(result)
    ranges = assert_tiles(keys, 0, tail)
    assert len(ranges) == 3 and all(len(r) <= 10 for r in ranges)
    assert request.run_key == f"{keys[0]}..{keys[-1]}"  # never requested twice
    assert request.tags["azaion/stage"] == "ingest"  # one ingest run at a time
    assert request.job_name == INGEST_JOB  # a named job, not the sensor's anonymous one
    assert instance.get_dynamic_partitions(ANNOTATION_BATCHES) == keys
    assert read_cursor(result.cursor, 0) == tail + 1
    # The cursor explains itself in the UI: named fields, not a bare number.
    assert json.loads(result.cursor or "") == {
        "next_offset": tail + 1,
        "tail_seen": tail,
        "given_up": [],
    }


def test_no_new_offsets_skips_and_new_ones_continue_from_the_cursor(stream_env, instance):
    tail = _publish(stream_env, 5)
    first = _tick(instance)
    assert isinstance(first, SensorResult)
    idle = _tick(instance, first.cursor)
    assert isinstance(idle, SkipReason)
    assert idle.skip_message == f"no new offsets: stream tail {tail}, next offset {tail + 1}"
    new_tail = _publish(stream_env, 3, seed=1)
    more = _tick(instance, first.cursor)
    assert isinstance(more, SensorResult)
    (request,) = more.run_requests or []
    assert request.partition_key == request.run_key == OffsetRange(tail + 1, new_tail).key


def test_a_large_backlog_is_taken_a_bounded_step_per_tick(stream_env, instance, monkeypatch):
    monkeypatch.setenv("STREAM_BATCH_MESSAGES", "3")
    monkeypatch.setenv("STREAM_SENSOR_MAX_PARTITIONS", "2")
    tail = _publish(stream_env, 20)
    cursor, seen = None, []
    for _ in range(20):
        result = _tick(instance, cursor)
        if isinstance(result, SkipReason):
            break
        assert len(result.run_requests or []) == 1
        assert len(requested_keys(result)) <= 2
        seen += requested_keys(result)
        cursor = result.cursor
    assert_tiles(seen, 0, tail)


def test_an_unreachable_broker_skips_with_the_reason_and_keeps_the_cursor(
    stream_env, instance, monkeypatch
):
    from azaion_assets.dev.localbroker import free_port

    monkeypatch.setenv("RABBITMQ_PORT", str(free_port()))
    cursor = json.dumps({"next_offset": 42})
    result = _tick(instance, cursor)
    assert isinstance(result, SkipReason)
    message = result.skip_message or ""
    assert message.startswith("stream unreachable: cannot reach ")
    assert message.endswith("; cursor stays at 42") and len(message) <= 150
    assert stream_env.password not in message


def test_a_wrong_password_skips_every_tick_without_leaking_sockets(
    stream_env, instance, monkeypatch
):
    import psutil

    monkeypatch.setenv("RABBITMQ_PASSWORD", "not-the-password")

    def sockets_to_broker() -> int:
        connections = psutil.Process().net_connections("tcp")
        return sum(1 for c in connections if c.raddr and c.raddr.port == stream_env.port)

    before = sockets_to_broker()
    for _ in range(4):
        result = _tick(instance)
        assert isinstance(result, SkipReason)
        assert "AuthenticationFailure" in (result.skip_message or "")
        assert "not-the-password" not in (result.skip_message or "")
    # The broker hangs up on a failed login; each tick must still close its socket.
    assert sockets_to_broker() == before


def test_a_missing_password_skips_naming_the_variable(stream_env, instance, monkeypatch):
    monkeypatch.delenv("RABBITMQ_PASSWORD")
    result = _tick(instance)
    assert isinstance(result, SkipReason)
    assert (result.skip_message or "").startswith("settings to fix: RABBITMQ_PASSWORD")
    assert "\n" not in (result.skip_message or "")  # one line: the UI shows one


def test_an_empty_stream_skips(stream_env, instance):
    result = _tick(instance)
    assert isinstance(result, SkipReason) and "empty" in (result.skip_message or "")


def test_a_fresh_sensor_starts_at_the_head_of_a_truncated_stream(truncated_stream, instance):
    head, tail = truncated_stream
    result = _tick(instance)
    assert isinstance(result, SensorResult)
    assert_tiles(requested_keys(result), head, tail)


def test_a_cursor_beyond_the_tail_says_the_stream_was_recreated(stream_env, instance):
    tail = _publish(stream_env, 3)
    result = _tick(instance, json.dumps({"next_offset": tail + 500}))
    assert isinstance(result, SkipReason)
    assert result.skip_message == (
        f"stream tail {tail} is behind cursor {tail + 500}: stream recreated? "
        "reset this sensor's cursor"
    )


# --- partitions left behind ------------------------------------------------------------------


def _run(instance, status, **tags):
    from dagster._core.test_utils import create_run_for_test

    return create_run_for_test(
        instance, job_name=INGEST_JOB, status=status, tags={"azaion/stage": "ingest", **tags}
    )


def _landed(instance, key):
    from dagster import AssetMaterialization

    instance.report_runless_asset_event(AssetMaterialization("annotations", partition=key))


def test_a_partition_whose_run_died_is_requested_again_until_given_up(
    stream_env, instance, monkeypatch
):
    from dagster import DagsterRunStatus as S

    from azaion_assets.defs.annotations.stranded_partitions import CHECK, MAX_REQUESTS

    monkeypatch.setenv("STREAM_BATCH_MESSAGES", "2")
    _publish(stream_env, 8)
    first = _tick(instance)
    assert isinstance(first, SensorResult)
    a, b, c, d = requested_keys(first)[:4]
    range_tags = dict(first.run_requests[0].tags)  # type: ignore[index]
    _run(instance, S.FAILURE, **range_tags)  # the worker died: nothing landed
    _landed(instance, a)  # ...but a, applied by an earlier run, had
    _run(instance, S.STARTED, **{"dagster/partition": c})  # c is being re-run right now

    second = _tick(instance, first.cursor)
    assert isinstance(second, SensorResult)
    assert sorted((r.partition_key, r.run_key) for r in second.run_requests or []) == [
        (b, f"{b}#2"),
        (d, f"{d}#2"),
    ]
    assert not second.asset_events  # nothing given up: the check's verdict stands

    cursor, result = second.cursor, second
    _landed(instance, d)
    for n in range(2, MAX_REQUESTS + 1):  # each re-request of b fails too
        _run(instance, S.FAILURE, **{"dagster/partition": b})
        result = _tick(instance, cursor)
        assert isinstance(result, SensorResult)
        cursor = result.cursor
        if n < MAX_REQUESTS:
            assert [r.run_key for r in result.run_requests or []] == [f"{b}#{n + 1}"]
    assert not result.run_requests  # b was given up on; c is still in flight
    (verdict,) = result.asset_events
    assert isinstance(verdict, AssetCheckEvaluation)
    assert verdict.check_name == CHECK and not verdict.passed
    assert verdict.metadata["partitions"].value == [b]
    idle = _tick(instance, cursor)  # the same verdict is not recorded again
    assert isinstance(idle, SkipReason)

    _landed(instance, b)  # an operator fixed it and materialised it
    fixed = _tick(instance, cursor)
    assert isinstance(fixed, SensorResult)
    (verdict,) = fixed.asset_events
    assert isinstance(verdict, AssetCheckEvaluation) and verdict.passed


def test_the_check_names_the_partitions_given_up(stream_env, instance, monkeypatch):
    from dagster import DagsterRunStatus as S
    from dagster import build_asset_check_context

    from azaion_assets.defs.annotations.stranded_partitions import (
        MAX_REQUESTS,
        every_partition_landed,
    )

    instance.add_dynamic_partitions(ANNOTATION_BATCHES, ["000000000000-000000000009"])
    context = build_asset_check_context(instance=instance)
    before = every_partition_landed(context)
    assert isinstance(before, AssetCheckResult) and before.passed  # no run failed yet
    for _ in range(MAX_REQUESTS):
        _run(instance, S.FAILURE, **{"dagster/partition": "000000000000-000000000009"})
    result = every_partition_landed(context)
    assert isinstance(result, AssetCheckResult) and not result.passed
    assert result.metadata["partitions"].value == ["000000000000-000000000009"]
