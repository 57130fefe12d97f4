"""Faults: ingest processes killed at random points, and a broker restarted under the sensor and
under a run. Nothing may be lost and nothing doubled."""

import asyncio
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from dagster import SensorResult, SkipReason, build_sensor_context, materialize

from azaion_assets.defs.annotations.annotation_stream_sensor import (
    build_annotation_stream_sensor,
    read_cursor,
)
from azaion_assets.defs.annotations.annotations import annotations
from azaion_assets.defs.partitions import ANNOTATION_BATCHES
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.dev.localbroker import LocalBroker
from azaion_assets.dev.messages import Author, annotation, bulk
from azaion_assets.dev.synthetic import render
from azaion_assets.lib.ingest import apply_events as ingest_module
from azaion_assets.lib.stream.client import probe_tail, publish
from azaion_assets.lib.stream.events import STATUS_PROPERTY, Role, Status
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets.lib.stream.stream_connection import StreamError, StreamTarget
from azaion_assets_tests.conftest import assert_tiles
from azaion_assets_tests.treeview import make_tree, snapshot

pytestmark = pytest.mark.slow
VALIDATOR = Author(Role.VALIDATOR, "val@azaion.com")
OPERATOR = Author(Role.OPERATOR, "op@azaion.com")


def _history(count: int, seed: int) -> list:
    """Creates, edits, bulk validates and deletes over 60 names, with some malformed messages."""
    rng = random.Random(seed)
    images = [render(random.Random(i), 96, 72)[0] for i in range(8)]
    names = [f"n{i:03d}" for i in range(60)]
    out = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.6:
            status = Status.CREATED if rng.random() < 0.7 else Status.EDITED
            author = rng.choice([VALIDATOR, OPERATOR])
            box = [(rng.choice([0, 3, 20]), 0.5, 0.5, 0.2, 0.2)]
            out.append(
                annotation(rng.choice(names), rng.choice(images), ".jpg", box, author, status)
            )
        elif roll < 0.8:
            out.append(bulk(rng.sample(names, 3), Status.VALIDATED, VALIDATOR))
        elif roll < 0.95:
            out.append(bulk([rng.choice(names)], Status.DELETED, VALIDATOR))
        else:
            out.append((b"\xc1 broken", {STATUS_PROPERTY: 10}))
    return out


def _child(root, keys: list[str], group_size: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "azaion_assets_tests.ingest_child",
            *(str(root), ",".join(keys), str(group_size), "0.006"),  # 400 messages: ~2.5 s
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _summaries(root) -> dict[str, tuple]:
    """Each finished partition's figures that must not depend on how often it was attempted."""
    import json
    import sqlite3

    from azaion_assets.lib.ingest.apply_events import state_path

    db = sqlite3.connect(state_path(make_tree(root)))
    try:
        rows = db.execute("SELECT partition, summary FROM partitions WHERE summary IS NOT NULL")
        summaries = {key: json.loads(text) for key, text in rows}
    finally:
        db.close()
    return {
        key: (s["messages"], s["first_offset"], s["last_offset"], s["events"])
        for key, s in summaries.items()
    }


@pytest.mark.parametrize("parts", [1, 4], ids=["one partition", "a run of four partitions"])
def test_killed_ingest_processes_leave_a_tree_that_a_rerun_completes_exactly(
    stream_env, tmp_path, parts
):
    asyncio.run(publish(stream_env, _history(400, seed=11)))
    tail = asyncio.run(probe_tail(stream_env))
    assert tail is not None
    step = (tail + parts) // parts
    keys = [OffsetRange(a, min(a + step - 1, tail)).key for a in range(0, tail + 1, step)]
    assert len(keys) == parts

    started = time.monotonic()
    reference = _child(tmp_path / "reference", keys, 8)
    out, err = reference.communicate(timeout=120)
    assert reference.returncode == 0, err.decode()
    duration = time.monotonic() - started
    expected = snapshot(make_tree(tmp_path / "reference"))
    counts = dict(line.split("=") for line in out.decode().split())
    assert expected and sum(map(int, counts.values())) == 400 and list(counts) == keys
    expected_summaries = _summaries(tmp_path / "reference")

    rng = random.Random(5)
    interrupted = 0
    for attempt in range(4 if parts == 1 else 3):
        root = tmp_path / f"killed-{attempt}"
        for _ in range(3):  # kill the same run three times, at random moments
            proc = _child(root, keys, 8)
            time.sleep(rng.uniform(0.3, 0.85 * duration))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if proc.returncode == -signal.SIGKILL:
                interrupted += 1
        final = _child(root, keys, 8)
        _, err = final.communicate(timeout=120)
        assert final.returncode == 0, err.decode()
        assert snapshot(make_tree(root)) == expected, f"attempt {attempt}"
        # Each partition was recorded once, with every message it holds: none lost or doubled
        # by a kill between two partitions of a run.
        assert _summaries(root) == expected_summaries, f"attempt {attempt}"
    # Most kills landed while a run was still going. A run of several partitions skips those
    # a killed run finished, so the later kills of an attempt often find it done already.
    assert interrupted >= (6 if parts == 1 else 3)


def _until_available(target: StreamTarget, timeout: float = 60.0) -> None:
    """After a restart the port opens before the stream's leader is back: wait until it serves
    the stream's messages again (every caller's stream holds some)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if asyncio.run(probe_tail(target, timeout=5)) is not None:
                return
        except StreamError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{target.stream} served no messages {timeout:.0f}s after a restart"
            )
        time.sleep(0.5)


@pytest.fixture
def own_broker(tmp_path):
    """A broker this test may restart (the session broker is shared)."""
    with LocalBroker(base=tmp_path / "broker") as local:
        yield local


def _env_for(broker: LocalBroker, stream: str, monkeypatch, root) -> StreamTarget:
    target = broker.target(stream)
    for name, value in {
        **target.as_env(),
        "AZAION_ROOT_DIR": str(root),
        "STREAM_READ_TIMEOUT_SECONDS": "3",
        "STREAM_BATCH_MESSAGES": "50",
    }.items():
        monkeypatch.setenv(name, value)
    return target


def test_the_sensor_resumes_after_a_broker_restart_and_covers_every_offset_once(
    own_broker, instance, monkeypatch, tmp_path
):
    target = _env_for(own_broker, "restart-sensor", monkeypatch, tmp_path / "azaion")
    sensor = build_annotation_stream_sensor(30)
    resources = {"azaion_settings": AzaionSettingsResource()}
    asyncio.run(publish(target, _history(120, seed=1)))

    def tick(cursor):
        ctx = build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        result = sensor(ctx)
        assert isinstance(result, (SensorResult, SkipReason))
        return result

    requested: list[str] = []
    cursor = None
    restarting = threading.Thread(target=own_broker.restart)
    restarting.start()  # the broker goes down while the next ticks run
    outcomes = []
    while restarting.is_alive() or not outcomes:
        result = tick(cursor)
        outcomes.append(type(result).__name__)
        if isinstance(result, SensorResult):
            requested += _offsets(result)
            cursor = result.cursor or cursor
        time.sleep(0.3)
    restarting.join()
    assert "SkipReason" in outcomes  # at least one tick saw the broker down and skipped
    _until_available(target)
    asyncio.run(publish(target, _history(60, seed=2)))
    tail = asyncio.run(probe_tail(target, timeout=10))
    assert tail is not None
    while read_cursor(cursor, 0) <= tail:  # 60 new: more than a batch, requested at once
        result = tick(cursor)
        assert isinstance(result, SensorResult), result
        requested += _offsets(result)
        cursor = result.cursor or cursor
    assert_tiles(requested, 0, tail)  # every offset requested once


def _offsets(result: SensorResult) -> list[str]:
    return [r.tags["azaion/offsets"] for r in result.run_requests or []]


def test_a_run_retries_through_a_broker_restart_and_succeeds(
    own_broker, instance, monkeypatch, tmp_path
):
    target = _env_for(own_broker, "restart-run", monkeypatch, tmp_path / "azaion")
    big = [
        annotation(f"big{i:04d}", render(random.Random(i % 16), 640, 480)[0], ".jpg", [], VALIDATOR)
        for i in range(1500)
    ]
    # Small chunks (window=10): what the reader holds in flight when the broker stops (a few
    # chunks, the applier's queue) is far less than the 1,400 messages still unread then.
    asyncio.run(publish(target, big, window=10))
    tail = asyncio.run(probe_tail(target, timeout=10))
    assert tail is not None
    key = OffsetRange(0, tail).key
    instance.add_dynamic_partitions(ANNOTATION_BATCHES, [key])
    data = tmp_path / "azaion" / "data" / "images"

    # The 100th message stops the broker before it is applied, and a thread brings it back:
    # the run's first attempt is certain to lose its connection with most of the range unread.
    real_decode = ingest_module.decode_message
    decoded = [0]
    restarter = threading.Thread(target=own_broker.start)

    def decode_then_stop(*args, **kwargs):
        decoded[0] += 1
        if decoded[0] == 100:
            own_broker.stop()
            restarter.start()
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "decode_message", decode_then_stop)
    result = materialize(
        [annotations],
        instance=instance,
        partition_key=key,
        resources={"azaion_settings": AzaionSettingsResource()},
        raise_on_error=False,
    )
    restarter.join()
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert result.success and retries, "the run should have failed once and retried"
    assert "StreamError" in str(retries[0].event_specific_data)
    files = sorted(p.name for p in data.iterdir())
    assert files == sorted(f"big{i:04d}.jpg" for i in range(1500))


def test_restarting_keeps_the_stream(own_broker):
    target = own_broker.target("keep")
    asyncio.run(publish(target, [(b"x", {}), (b"y", {})]))
    before = asyncio.run(probe_tail(target, timeout=10))
    own_broker.restart()
    _until_available(target)
    assert asyncio.run(probe_tail(target, timeout=10)) == before
