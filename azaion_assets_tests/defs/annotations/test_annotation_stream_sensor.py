"""The stream sensor, evaluated against a real broker and a real Dagster instance."""

import asyncio
import itertools
import json
import time
from typing import Any

import pytest
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
from azaion_assets.defs.annotations.ingest_job import INGEST_JOB, run_partitions
from azaion_assets.defs.partitions import ANNOTATION_BATCHES
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.dev.messages import Author, synthetic
from azaion_assets.lib.stream.client import probe_tail, publish
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets_tests.conftest import assert_tiles, requested_keys

OFFSETS = "azaion/offsets"

SENSOR = build_annotation_stream_sensor(30)


def _tick(instance, cursor=None) -> Any:  # SensorResult | SkipReason, asserted
    context = build_sensor_context(
        instance=instance, cursor=cursor, resources={"azaion_settings": AzaionSettingsResource()}
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


def _ago(cursor: str | None, seconds: float) -> str:
    """``cursor`` as if its pending offsets had been first seen ``seconds`` ago."""
    fields = json.loads(cursor or "{}")
    fields["pending_since"] = time.time() - seconds
    return json.dumps(fields)


def _request(result):
    assert isinstance(result, SensorResult), result
    (request,) = result.run_requests or []
    return request


def test_a_full_batch_is_requested_at_once_in_fixed_blocks(stream_env, instance, monkeypatch):
    monkeypatch.setenv("STREAM_BATCH_MESSAGES", "10")
    tail = _publish(stream_env, 25)
    result = _tick(instance)
    request = _request(result)
    keys = requested_keys(result)
    ranges = assert_tiles(keys, 0, 29)  # whole blocks of 10 offsets; the last one still open
    assert len(ranges) == 3 and all(len(r) == 10 for r in ranges)
    assert request.tags[OFFSETS] == OffsetRange(0, tail).key  # the run applies what is there
    assert request.run_key == OffsetRange(0, tail).key  # never requested twice
    assert request.tags["azaion/stage"] == "ingest"  # one ingest run at a time
    assert request.job_name == INGEST_JOB  # a named job, not the sensor's anonymous one
    assert instance.get_dynamic_partitions(ANNOTATION_BATCHES) == keys
    assert read_cursor(result.cursor, 0) == tail + 1
    # The cursor explains itself in the UI: named fields, not a bare number.
    assert json.loads(result.cursor or "") == {
        "next_offset": tail + 1,
        "tail_seen": tail,
        "open_block": keys[-1],
        "pending_since": None,
        "given_up": [],
    }


def test_a_trickle_waits_for_the_delay_then_fills_the_open_block(stream_env, instance):
    """Fewer messages than a batch wait, saying so, until the oldest would have waited
    STREAM_MAX_DELAY_SECONDS by the next tick; the next runs apply the new offsets to the same
    open partition."""
    tail = _publish(stream_env, 5)
    waiting = _tick(instance)
    assert isinstance(waiting, SensorResult) and not waiting.run_requests
    assert waiting.skip_reason is not None
    assert waiting.skip_reason.skip_message == (
        f"{tail + 1} messages pending for 0 s; ingest at 1000 messages or 60 s"
    )
    since = json.loads(waiting.cursor or "")["pending_since"]
    assert since == pytest.approx(time.time(), abs=5)
    still = _tick(instance, _ago(waiting.cursor, 29))
    assert isinstance(still, SkipReason)  # nothing new seen: the cursor is not written again
    assert (still.skip_message or "").startswith(f"{tail + 1} messages pending for 29 s;")

    # The next tick (this sensor's interval is 30 s) would be past the delay: this one asks.
    first = _tick(instance, _ago(waiting.cursor, 31))
    request = _request(first)
    assert requested_keys(first) == [OffsetRange(0, 999).key]
    assert request.tags[OFFSETS] == OffsetRange(0, tail).key
    idle = _tick(instance, first.cursor)
    assert isinstance(idle, SkipReason)
    assert idle.skip_message == f"no new offsets: stream tail {tail}, next offset {tail + 1}"

    new_tail = _publish(stream_env, 3, seed=1)
    more = _tick(instance, _ago(first.cursor, 61))
    request = _request(more)
    assert not more.dynamic_partitions_requests  # the same block, materialised again
    assert request.partition_key == OffsetRange(0, 999).key
    assert request.tags[OFFSETS] == request.run_key == OffsetRange(tail + 1, new_tail).key


def test_the_wait_is_counted_from_the_end_of_the_tick_before(stream_env, instance):
    """The tick before saw none of the pending messages: they have waited since it ended at
    least, so the delay is not an interval late."""
    from dagster import SensorEvaluationContext
    from dagster._core.execution.build_resources import wrap_resources_for_execution

    tail = _publish(stream_env, 2)
    context = SensorEvaluationContext(
        instance_ref=None,
        last_tick_completion_time=time.time() - 4,
        last_run_key=None,
        cursor=None,
        log_key=None,
        repository_name=None,
        instance=instance,
        resources=wrap_resources_for_execution({"azaion_settings": AzaionSettingsResource()}),
    )
    result = SENSOR(context)
    assert isinstance(result, SensorResult) and result.skip_reason is not None
    assert (result.skip_reason.skip_message or "").startswith(
        f"{tail + 1} messages pending for 4 s;"
    )


def test_no_run_is_requested_while_an_ingest_run_is_in_flight(stream_env, instance, monkeypatch):
    """A queue of ingest runs never builds up: with one in flight, a full batch waits, and the
    first tick after it ends takes everything pending in one run."""
    from dagster import DagsterRunStatus as S

    monkeypatch.setenv("STREAM_BATCH_MESSAGES", "10")
    _publish(stream_env, 12)
    first = _tick(instance)
    tags = dict(_request(first).tags)
    tail = _publish(stream_env, 30, seed=1)
    for status in (S.STARTING, S.STARTED):
        run = _run(instance, status, **tags)
        held = _tick(instance, first.cursor)
        assert isinstance(held, SensorResult) and not held.run_requests
        assert held.skip_reason is not None
        assert held.skip_reason.skip_message == (
            f"30 messages pending for 0 s; ingest run {run.run_id[:8]} is "
            f"{status.value.lower()}: the first tick after it requests the next"
        )
        instance.delete_run(run.run_id)
    _run(instance, S.SUCCESS, **tags)  # the run ended
    after = _tick(instance, first.cursor)
    request = _request(after)
    assert request.tags[OFFSETS] == OffsetRange(12, tail).key  # all of it, in one run
    assert run_partitions(dict(request.tags)) == (OffsetRange(10, 19).key, OffsetRange(40, 49).key)


def test_a_large_backlog_is_taken_a_bounded_step_per_run(stream_env, instance, monkeypatch):
    monkeypatch.setenv("STREAM_BATCH_MESSAGES", "3")
    monkeypatch.setenv("STREAM_SENSOR_MAX_PARTITIONS", "2")
    tail = _publish(stream_env, 20)
    cursor, seen, offsets = None, [], []
    for _ in range(20):
        result = _tick(instance, _ago(cursor, 61) if cursor else None)
        if isinstance(result, SkipReason):
            break
        request = _request(result)
        assert len(requested_keys(result)) <= 2
        seen += requested_keys(result)
        offsets.append(OffsetRange.parse(request.tags[OFFSETS]))
        cursor = result.cursor
    assert_tiles(seen, 0, 20)  # 2 below a batch: taken once they have waited the delay
    assert offsets[0] == OffsetRange(0, 5) and offsets[-1].last == tail
    assert all(a.last + 1 == b.first for a, b in itertools.pairwise(offsets))


def test_a_cursor_of_the_old_shape_continues_in_blocks_from_its_next_offset(
    stream_env, instance, monkeypatch
):
    """An instance whose partitions were one per tick: its cursor had no open block, so the
    first block starts at its next offset; the old partitions are left as they are."""
    monkeypatch.setenv("STREAM_BATCH_MESSAGES", "10")
    tail = _publish(stream_env, 14)
    old = "000000000000-000000000003"
    instance.add_dynamic_partitions(ANNOTATION_BATCHES, [old])
    cursor = json.dumps({"next_offset": 4, "tail_seen": 3, "given_up": []})
    result = _tick(instance, cursor)
    assert requested_keys(result) == [OffsetRange(4, 13).key]
    assert _request(result).tags[OFFSETS] == OffsetRange(4, tail).key
    assert instance.get_dynamic_partitions(ANNOTATION_BATCHES) == [old, OffsetRange(4, 13).key]


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
    waiting = _tick(instance)
    assert read_cursor(waiting.cursor, 0) == head  # type: ignore[union-attr]
    request = _request(_tick(instance, _ago(waiting.cursor, 61)))  # type: ignore[union-attr]
    assert request.tags[OFFSETS] == OffsetRange(head, tail).key
    assert request.partition_key == OffsetRange(head, head + 999).key


def test_a_cursor_beyond_the_tail_says_the_stream_was_recreated(stream_env, instance):
    tail = _publish(stream_env, 3)
    result = _tick(instance, json.dumps({"next_offset": tail + 500}))
    assert isinstance(result, SkipReason)
    assert result.skip_message == (
        f"stream tail {tail} is behind cursor {tail + 500}: stream recreated? "
        "reset this sensor's cursor"
    )


# --- offsets left behind ---------------------------------------------------------------------


def _run(instance, status, **tags):
    from dagster._core.test_utils import create_run_for_test

    return create_run_for_test(
        instance, job_name=INGEST_JOB, status=status, tags={"azaion/stage": "ingest", **tags}
    )


def test_offsets_whose_run_died_are_requested_again_until_given_up(
    stream_env, instance, monkeypatch
):
    from dagster import DagsterRunStatus as S

    from azaion_assets.defs.annotations.stranded_partitions import CHECK, MAX_REQUESTS

    monkeypatch.setenv("STREAM_BATCH_MESSAGES", "4")
    tail = _publish(stream_env, 6)
    first = _tick(instance)
    tags = dict(_request(first).tags)
    assert tags[OFFSETS] == OffsetRange(0, tail).key
    _run(instance, S.FAILURE, **tags)  # the worker died: nothing landed
    new_tail = _publish(stream_env, 5, seed=1)

    second = _tick(instance, _ago(first.cursor, 61))
    retry = _request(second)  # the failed offsets first, alone, with the same tag
    assert (retry.run_key, retry.tags[OFFSETS]) == (f"{tags[OFFSETS]}#2", tags[OFFSETS])
    assert run_partitions(dict(retry.tags)) == run_partitions(tags)  # the same partitions
    assert not second.asset_events  # nothing given up: the check's verdict stands
    assert read_cursor(second.cursor, 0) == tail + 1  # the new offsets wait their turn

    cursor, result = second.cursor, second
    for n in range(2, MAX_REQUESTS + 1):  # each re-request fails too
        _run(instance, S.FAILURE, **tags)
        result = _tick(instance, _ago(cursor, 61))
        assert isinstance(result, SensorResult)
        cursor = result.cursor
        if n < MAX_REQUESTS:
            assert [r.run_key for r in result.run_requests or []] == [f"{tags[OFFSETS]}#{n + 1}"]
    (verdict,) = result.asset_events
    assert isinstance(verdict, AssetCheckEvaluation)
    assert verdict.check_name == CHECK and not verdict.passed
    assert verdict.metadata["offsets"].value == [tags[OFFSETS]]
    # Given up on, the new offsets go on: in the same open block, from where the cursor was.
    request = _request(result)
    assert request.tags[OFFSETS] == OffsetRange(tail + 1, new_tail).key

    _run(instance, S.SUCCESS, **tags)  # an operator fixed it and re-executed the run
    fixed = _tick(instance, cursor)
    assert isinstance(fixed, SensorResult)
    (verdict,) = fixed.asset_events
    assert isinstance(verdict, AssetCheckEvaluation) and verdict.passed


def test_runs_of_other_jobs_neither_hold_the_stream_nor_count_as_stranded(
    stream_env, instance, monkeypatch
):
    """Runs are matched to ingest by their tag after the status query, not in it (a tag filter
    reads a year of ingest runs each tick): a training in flight, or a failed run of another
    job that happens to carry offsets, changes nothing."""
    from dagster import DagsterRunStatus as S
    from dagster._core.test_utils import create_run_for_test

    monkeypatch.setenv("STREAM_BATCH_MESSAGES", "4")
    _publish(stream_env, 6)
    first = _request(_tick(instance))
    create_run_for_test(instance, job_name="retraining_job", status=S.STARTED)
    offsets_only = {k: v for k, v in first.tags.items() if k != "azaion/stage"}
    create_run_for_test(instance, job_name="housekeeping_job", status=S.FAILURE, tags=offsets_only)
    again = _request(_tick(instance))
    assert (again.run_key, again.tags[OFFSETS]) == (first.run_key, first.tags[OFFSETS])
    _run(instance, S.FAILURE, **first.tags)  # the same, with the stage tag: stranded
    retry = _request(_tick(instance, _ago(_tick(instance).cursor, 61)))
    assert retry.run_key == f"{first.tags[OFFSETS]}#2"


def test_a_failed_run_of_the_old_shape_is_retried_by_its_partition(stream_env, instance):
    """A run made before the offsets tag: its partition's whole range, until it has landed."""
    from dagster import AssetMaterialization
    from dagster import DagsterRunStatus as S

    tail = _publish(stream_env, 4)
    key = OffsetRange(0, tail).key
    instance.add_dynamic_partitions(ANNOTATION_BATCHES, [key])
    _run(instance, S.FAILURE, **{"dagster/partition": key})
    cursor = json.dumps({"next_offset": tail + 1, "tail_seen": tail, "given_up": []})
    retry = _request(_tick(instance, cursor))
    assert (retry.partition_key, retry.run_key, retry.tags[OFFSETS]) == (key, f"{key}#2", key)
    instance.report_runless_asset_event(AssetMaterialization("annotations", partition=key))
    assert isinstance(_tick(instance, cursor), SkipReason)  # landed: nothing to do


def test_the_check_names_the_offsets_given_up(stream_env, instance):
    from dagster import DagsterRunStatus as S
    from dagster import build_asset_check_context

    from azaion_assets.defs.annotations.stranded_partitions import (
        MAX_REQUESTS,
        every_partition_landed,
    )

    key = "000000000000-000000000009"
    context = build_asset_check_context(instance=instance)
    before = every_partition_landed(context)
    assert isinstance(before, AssetCheckResult) and before.passed  # no run failed yet
    for _ in range(MAX_REQUESTS):
        _run(
            instance, S.FAILURE, **{"dagster/partition": key, OFFSETS: "000000000002-000000000007"}
        )
    result = every_partition_landed(context)
    assert isinstance(result, AssetCheckResult) and not result.passed
    assert result.metadata["offsets"].value == ["000000000002-000000000007"]


def test_an_instance_of_the_old_shape_keeps_its_history_and_goes_on(stream_env, instance):
    """An instance made before partitions filled: one partition a tick, each its own offset
    range, materialised once, and a cursor without an open block. The new sensor goes on from
    its cursor in blocks; the old partitions keep their materialisations, and what the sensors
    count (distinct validated names) and the day's totals span both shapes."""
    from dagster import AssetKey, Definitions, materialize

    from azaion_assets.defs.annotations.annotations import annotations
    from azaion_assets.defs.annotations.ingest_job import ingest_job
    from azaion_assets.defs.instance_facts import changed_since
    from azaion_assets.dev.messages import Role

    validator = Author(Role.VALIDATOR, "val@azaion.com")
    resources = {"azaion_settings": AzaionSettingsResource()}
    old_keys, first = [], 0
    for n in (3, 4):  # the old sensor's ticks: a partition each, applied as a whole
        tail = asyncio.run(_send(stream_env, n, validator, f"old{n}"))
        key = OffsetRange(first, tail).key
        instance.add_dynamic_partitions(ANNOTATION_BATCHES, [key])
        assert materialize(
            [annotations], instance=instance, partition_key=key, resources=resources
        ).success
        old_keys.append(key)
        first = tail + 1
    cursor = json.dumps({"next_offset": first, "tail_seen": first - 1, "given_up": []})
    history = instance.fetch_materializations(AssetKey("annotations"), limit=10).records

    new_tail = asyncio.run(_send(stream_env, 5, validator, "new"))
    result = _tick(instance, _ago(cursor, 61))
    request = _request(result)
    assert request.tags[OFFSETS] == OffsetRange(first, new_tail).key
    job = Definitions(assets=[annotations], jobs=[ingest_job], resources=resources)
    run = job.resolve_job_def(INGEST_JOB).execute_in_process(
        instance=instance, tags={**request.tags, "dagster/partition": str(request.partition_key)}
    )
    assert run.success

    block = OffsetRange(first, first + 999).key
    assert instance.get_dynamic_partitions(ANNOTATION_BATCHES) == [*old_keys, block]
    assert instance.get_materialized_partitions(AssetKey("annotations")) == {*old_keys, block}
    now = instance.fetch_materializations(AssetKey("annotations"), limit=10).records
    assert [r.storage_id for r in now[1:]] == [r.storage_id for r in history]  # kept as it was
    assert changed_since(instance, {}).validated == 3 + 4 + 5
    arrivals = instance.get_latest_materialization_event(AssetKey("daily_arrivals"))
    metadata = arrivals.asset_materialization.metadata  # type: ignore[union-attr]
    assert metadata["messages"].value == 12 and metadata["ingest_segments"].value == 3
    assert read_cursor(result.cursor, 0) == new_tail + 1


async def _send(stream, count: int, author, prefix: str) -> int:
    await publish(stream, synthetic(count, author, prefix=prefix, width=32, height=32))
    tail = await probe_tail(stream)
    assert tail is not None
    return tail
