"""The main job, end to end through the stream, as production runs it.

1. A broker: the configured one if RABBITMQ_HOST is set, else a throwaway local broker.
2. The synthetic set is published as Azaion messages (validators' and operators' annotations,
   frames of a dozen videos; a bulk Validate, and two messages for the quarantine: one that is
   not msgpack, and a frame whose box names a class the platform does not have).
3. ``dagster-daemon`` runs: ``annotation_stream_sensor`` turns the new offsets into partitions
   and the queued ingest runs carry them into ``data/``.
4. ``retraining_sensor`` sees that enough validated annotations arrived and requests
   ``retraining_job`` (dataset -> model -> onnx_model -> champion) for today, which the
   daemon's queue launches as a training run. For another day, or when today's dataset was
   already formed (a second demo the same day), the demo launches the job itself.
5. ``model_release_sensor`` sees the new champion and requests ``model_release_job``: the pair
   is encrypted and split between a local Azaion API stand-in and a local S3 server, and the demo
   fetches it back as an edge device would and checks it is byte-identical. Never the configured
   API: the demo's toy model must not reach the edge fleet.
6. A second batch arrives, frames of new videos shot in winter (the champion only saw summer):
   ``champion_monitor_sensor`` has ``champion_monitor`` score the champion on them, and the demo
   prints its figures beside the champion's test score, and what ``retraining_sensor`` decided.

The broker and the release stand-ins are ``demo_services``; starting the daemon, launching a job
and waiting on the instance are ``instance_runs``, which the tests and benchmarks share.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime

from azaion_assets.dev import messages
from azaion_assets.dev.demo_services import broker_for, release_services_for, verify_release
from azaion_assets.dev.instance_runs import (
    daemon,
    dataset_formed,
    latest_metadata,
    launch_retraining,
    monitor_run,
    prime_instance,
    run_status,
    sensor_run,
    wait_for,
    wait_for_ingest,
)
from azaion_assets.dev.synthetic import samples
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.stream.client import probe_tail, publish
from azaion_assets.lib.stream.events import STATUS_PROPERTY, Role, Status
from azaion_assets.lib.stream.stream_connection import StreamTarget

DEMO_VIDEOS = 12  # the 96 validated frames: 8 videos land in train, 2 in valid, 2 in test


def demo_messages(count: int, seed: int) -> tuple[list[messages.Message], int]:
    """``count`` annotations by validators, plus a sixth as many by an operator, half of which
    a validator then approves in bulk, a message that is not msgpack and a frame with a box of
    class 200 (both quarantined, the frame shown on ``daily_arrivals``); and how many are
    validated."""
    validator = messages.Author(Role.VALIDATOR, "validator@azaion.local")
    operator = messages.Author(Role.OPERATOR, "operator@azaion.local")
    seeded = max(2, count // 6)
    # Frames of a few videos, so the dataset keeps each video in one split (see split.py).
    batch = list(messages.synthetic(count, validator, seed, "validated", videos=DEMO_VIDEOS))
    batch += messages.synthetic(seeded, operator, seed + 1, "seeded", videos=2)
    approved = [f"seeded_{seed + 1:04d}_{i:06d}" for i in range(0, seeded, 2)]
    batch.append(messages.bulk(approved, Status.VALIDATED, validator))
    batch.append((b"\xc1 not msgpack", {STATUS_PROPERTY: int(Status.CREATED)}))
    (odd,) = samples(1, seed=seed + 2, prefix="odd")
    box = (200, *odd.boxes[0][1:]) if odd.boxes else (200, 0.5, 0.5, 0.2, 0.2)
    batch.append(messages.annotation(odd.name, odd.image, ".jpg", [box], validator))
    return batch, count + len(approved)


def publish_demo_set(target: StreamTarget, count: int, seed: int) -> tuple[int, int]:
    """Publish the demo set; returns the stream's tail offset and the validated count."""
    batch, validated = demo_messages(count, seed)
    sent = asyncio.run(publish(target, batch))
    tail = asyncio.run(probe_tail(target))
    assert tail is not None
    print(f"published {sent} messages to {target.where()}; tail offset {tail}")
    return tail, validated


def run_demo(settings: Settings, count: int, seed: int, partition: str) -> int:
    from dagster import DagsterInstance

    with broker_for(settings) as (target, broker_env), release_services_for(settings) as rel_env:
        env = {**os.environ, **broker_env, **rel_env}
        env.setdefault("STREAM_SENSOR_INTERVAL_SECONDS", "5")
        env.setdefault("RELEASE_SENSOR_INTERVAL_SECONDS", "5")
        env.setdefault("STREAM_BATCH_MESSAGES", str(max(10, count // 3)))
        env.setdefault("RETRAIN_SENSOR_INTERVAL_SECONDS", "5")
        env.setdefault("MONITOR_SENSOR_INTERVAL_SECONDS", "5")
        env.setdefault("MONITOR_MIN_NEW_VALIDATED", str(_second_batch(count)))
        # The second batch is all the new data there is: let the degradation rule judge it. This
        # process judges the rule too (the demo prints its verdict), so it shares the value.
        env.setdefault("RETRAIN_DEGRADATION_MIN_IMAGES", str(_second_batch(count)))
        os.environ["RETRAIN_DEGRADATION_MIN_IMAGES"] = env["RETRAIN_DEGRADATION_MIN_IMAGES"]
        tail, validated = publish_demo_set(target, count, seed)
        # Retrain once everything this demo published has landed.
        env.setdefault("RETRAIN_MIN_NEW_VALIDATED", str(validated))
        prime_instance()
        started = time.monotonic()
        today = datetime.now(UTC).date().isoformat()
        automatic = partition == today and not dataset_formed(today)
        with daemon(env):
            ingested = wait_for_ingest(tail, timeout=600)
            print(
                f"sensor and runs ingested {len(ingested)} partitions "
                f"in {time.monotonic() - started:.0f}s: {', '.join(ingested)}"
            )
            if automatic:
                print(f"waiting for retraining_sensor ({validated} new validated annotations) ...")
                run_id = wait_for("retraining_sensor's request", lambda: sensor_run(today), 300)
            else:
                print(f"launching retraining_job for {partition} (the sensor retrains once a day)")
                with DagsterInstance.get() as instance:
                    run_id = launch_retraining(instance, env, partition, trigger="demo")
            print(f"training run {run_id} with {settings.training_model} ...")
            status = wait_for(f"run {run_id}", lambda: run_status(run_id), 3600, every=5)
            print(f"training run {run_id}: {status} after {time.monotonic() - started:.0f}s")
            if status != "SUCCESS":
                return 1
            if not _is_champion(settings, partition):
                print(f"{partition} was not promoted, so there is no new release")
                return 0
            released = _release(settings, env, partition)
            if released != 0:
                return released
            return _monitor(target, count, seed)


def _is_champion(settings: Settings, partition: str) -> bool:
    from azaion_assets.lib.champion.files import held_partition
    from azaion_assets.lib.config.datatree import DataTree

    return held_partition(DataTree.from_settings(settings).champion) == partition


def _release(settings: Settings, env: dict[str, str], partition: str) -> int:
    """Wait for model_release_sensor's release run, then fetch the release back."""
    from azaion_assets.defs.release.model_release_sensor import SENSOR
    from azaion_assets.lib.config.datatree import DataTree

    print("waiting for model_release_sensor to release the new champion ...")
    by_sensor = {"dagster/sensor_name": SENSOR}
    run_id = wait_for(
        "model_release_sensor's request", lambda: sensor_run(partition, by_sensor), 300
    )
    status = wait_for(f"run {run_id}", lambda: run_status(run_id), 600)
    print(f"release run {run_id}: {status}")
    if status != "SUCCESS":
        return 1
    tree = DataTree.from_settings(settings)
    edge = tree.root / "edge"
    manifest = verify_release(settings, env, edge)
    for entry in manifest["files"]:
        same = (edge / entry["name"]).read_bytes() == (tree.models / entry["name"]).read_bytes()
        print(f"edge fetch  {entry['name']}: byte-identical to models/{entry['name']}: {same}")
        if not same:
            return 1
    return 0


def _second_batch(count: int) -> int:
    return max(8, count // 2)


def _monitor(target: StreamTarget, count: int, seed: int) -> int:
    """Publish winter frames of new videos, then show the champion's score on them."""
    from azaion_assets.defs.monitor.champion_monitor_sensor import SENSOR as MONITOR_SENSOR

    validator = messages.Author(Role.VALIDATOR, "validator@azaion.local")
    size = _second_batch(count)
    batch = list(messages.synthetic(size, validator, seed + 7, "winter", 4, scene="winter"))
    asyncio.run(publish(target, batch))
    tail = asyncio.run(probe_tail(target))
    assert tail is not None
    print(f"second batch: {size} winter frames of 4 new videos published; tail offset {tail}")
    wait_for_ingest(tail, timeout=600)
    print("waiting for champion_monitor_sensor to score the champion on them ...")
    run_id = wait_for("champion_monitor_sensor's request", lambda: monitor_run(MONITOR_SENSOR), 300)
    status = wait_for(f"run {run_id}", lambda: run_status(run_id), 600, every=3)
    print(f"champion_monitor run {run_id}: {status}")
    if status != "SUCCESS":
        return 1
    figures = latest_metadata("champion_monitor")
    print(
        f"champion {figures['champion']} on new data: mAP50-95 {figures['new_data_mAP50-95']} "
        f"over {figures['new_images']} images of {figures['new_videos']} videos; on its own "
        f"test split: {figures['champion_test_mAP50-95']}"
    )
    print(f"degradation rule of retraining_sensor: {_degradation()}")
    return 0


def _degradation() -> str:
    """What the degradation rule makes of this score (the sensor itself retrains once a day,
    and today's dataset is formed: it would act on tomorrow's first tick)."""
    from dagster import DagsterInstance

    from azaion_assets.defs.training.retraining_sensor import gather_facts
    from azaion_assets.lib.config.sources import load_settings
    from azaion_assets.lib.training.retrain_policy import Rules, degradation

    settings = load_settings()
    rules = Rules(
        settings.retrain_min_new_validated,
        settings.retrain_degradation_margin,
        settings.retrain_degradation_min_images,
    )
    with DagsterInstance.get() as instance:
        facts = gather_facts(instance, datetime.now(UTC).date().isoformat())
    degraded, figures = degradation(facts, rules)
    return f"{figures}: {'retrain' if degraded else 'no retraining'}"
