"""The main job, end to end through the stream, as production runs it.

1. A broker: the configured one if RABBITMQ_HOST is set, else a throwaway local broker.
2. The synthetic set is published as Azaion messages (validators' and operators' annotations,
   frames of a dozen videos; a bulk Validate, and one malformed message to show the quarantine).
3. ``dagster-daemon`` runs: ``annotation_stream_sensor`` turns the new offsets into partitions
   and the queued ingest runs carry them into ``data/``.
4. ``retraining_sensor`` sees that enough validated annotations arrived and requests
   ``retraining_job`` (dataset -> model -> onnx_model) for today, which the daemon's queue
   launches as a training run. For another day, or when today's dataset was already formed (a
   second demo the same day), the demo launches the job itself, as an operator would.
5. ``model_release_sensor`` sees the new champion and requests ``model_release_job``: the pair
   is encrypted and split between a local Azaion API stand-in and a local S3 server, and the demo
   fetches it back as an edge device would and checks it is byte-identical. Never the configured
   API: the demo's toy model must not reach the edge fleet.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from azaion_assets.dev import messages
from azaion_assets.dev.localbroker import LocalBroker
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.stream.client import StreamTarget, probe_tail, publish
from azaion_assets.lib.stream.contract import STATUS_PROPERTY, Role, Status

if TYPE_CHECKING:
    from dagster import DagsterInstance

FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
DEMO_VIDEOS = 12  # the 96 validated frames: 8 videos land in train, 2 in valid, 2 in test


def _tool(name: str) -> str:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or name


@contextmanager
def broker_for(settings: Settings) -> Iterator[tuple[StreamTarget, dict[str, str]]]:
    """The stream and the RABBITMQ_* the runs need: the configured broker (nothing to add to
    the environment), or a local one for the demo's lifetime."""
    if os.environ.get("RABBITMQ_HOST"):
        yield StreamTarget.from_settings(settings), {}
        return
    with LocalBroker() as local:
        print(f"started a local RabbitMQ with streams on {local.host}:{local.stream_port}")
        target = local.target(settings.rabbitmq_queue_name)
        yield target, target.as_env()


@contextmanager
def release_services_for(settings: Settings) -> Iterator[dict[str, str]]:
    """The release settings the demo's runs get, overriding any configured ones: a local Azaion
    API stand-in (docs/azaion-api.md) and a local S3 server with per-role key pairs
    (``core.localcdn``) for the demo's lifetime, with throwaway credentials and model key. A
    demo never releases to the real API, whose pointer the whole edge fleet reads."""
    import secrets

    from azaion_assets.dev.localapi import LocalAzaionApi
    from azaion_assets.dev.localcdn import LocalCdn

    email, password = "demo@azaion.local", secrets.token_urlsafe(16)
    with LocalCdn() as cdn, LocalAzaionApi(email, password) as api:
        cdn.provision(api, "azaion-models", settings.release_cdn_config_folder)
        print(f"started a local Azaion API on {api.url} and a local S3 server on {cdn.endpoint}")
        yield {
            "AZAION_API_URL": api.url,
            "AZAION_API_EMAIL": email,
            "AZAION_API_PASSWORD": password,
            "MODEL_ENCRYPTION_KEY": secrets.token_urlsafe(24),
        }


def verify_release(settings: Settings, env: dict[str, str], target: Path) -> dict:
    """Fetch the current release as an edge device would; returns its manifest."""
    from azaion_assets.lib.release.azaion_api import AzaionApi
    from azaion_assets.lib.release.bundle import fetch
    from azaion_assets.lib.release.hardware import fingerprint

    api = AzaionApi(env["AZAION_API_URL"], env["AZAION_API_EMAIL"], env["AZAION_API_PASSWORD"])
    key = env["MODEL_ENCRYPTION_KEY"]
    folders = (settings.release_api_folder, settings.release_cdn_config_folder)
    return fetch(api, fingerprint(), key, target, *folders)


def demo_messages(count: int, seed: int) -> tuple[list[messages.Message], int]:
    """``count`` annotations by validators, plus a sixth as many by an operator, half of which
    a validator then approves in bulk, and one malformed message; and how many are validated."""
    validator = messages.Author(Role.VALIDATOR, "validator@azaion.local")
    operator = messages.Author(Role.OPERATOR, "operator@azaion.local")
    seeded = max(2, count // 6)
    # Frames of a few videos, so the dataset keeps each video in one split (see split.py).
    batch = list(messages.synthetic(count, validator, seed, "validated", videos=DEMO_VIDEOS))
    batch += messages.synthetic(seeded, operator, seed + 1, "seeded", videos=2)
    approved = [f"seeded_{seed + 1:04d}_{i:06d}" for i in range(0, seeded, 2)]
    batch.append(messages.bulk(approved, Status.VALIDATED, validator))
    batch.append((b"\xc1 not msgpack", {STATUS_PROPERTY: int(Status.CREATED)}))
    return batch, count + len(approved)


def publish_demo_set(target: StreamTarget, count: int, seed: int) -> tuple[int, int]:
    """Publish the demo set; returns the stream's tail offset and the validated count."""
    batch, validated = demo_messages(count, seed)
    sent = asyncio.run(publish(target, batch))
    tail = asyncio.run(probe_tail(target))
    assert tail is not None
    print(f"published {sent} messages to {target.where()}; tail offset {tail}")
    return tail, validated


@contextmanager
def daemon(env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """``dagster-daemon run`` on the project's workspace: sensors and the run queue."""
    proc = subprocess.Popen([_tool("dagster-daemon"), "run", "-w", "workspace.yaml"], env=env)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _prime_instance() -> None:
    """Create the instance's SQLite storage once, before the daemon and its code server start
    together and race to create it."""
    from dagster import DagsterInstance

    with DagsterInstance.get():
        pass


def ingested_through(instance: DagsterInstance, tail: int) -> list[str] | None:
    """The materialised annotations partitions, once every offset up to ``tail`` is in one and
    no partition is pending; else None."""
    from dagster import AssetKey

    from azaion_assets.defs.partitions import ANNOTATION_BATCHES
    from azaion_assets.lib.stream.offsets import OffsetRange

    keys = instance.get_dynamic_partitions(ANNOTATION_BATCHES)
    done = instance.get_materialized_partitions(AssetKey("annotations"))
    covered = max((OffsetRange.parse(k).last for k in keys if k in done), default=-1)
    return sorted(done) if covered >= tail and set(keys) <= done else None


def wait_for_ingest(tail: int, timeout: float) -> list[str]:
    """Until every offset up to ``tail`` is in a materialised annotations partition."""
    from dagster import AssetKey, DagsterInstance

    from azaion_assets.defs.partitions import ANNOTATION_BATCHES

    deadline = time.monotonic() + timeout
    with DagsterInstance.get() as instance:
        while (done := ingested_through(instance, tail)) is None:
            if time.monotonic() > deadline:
                keys = instance.get_dynamic_partitions(ANNOTATION_BATCHES)
                landed = instance.get_materialized_partitions(AssetKey("annotations"))
                pending = [k for k in keys if k not in landed]
                raise TimeoutError(
                    f"ingest did not reach offset {tail} in {timeout:.0f}s "
                    f"(partitions {len(keys)}, pending {pending[:5]}); see the daemon log above"
                )
            time.sleep(2)
        return done


def _sensor_run(partition: str, tags: dict[str, str] | None = None) -> str | None:
    from dagster import DagsterInstance, RunsFilter

    from azaion_assets.defs.training.retraining_sensor import SENSOR
    from azaion_assets.lib.training.retrain_policy import TRIGGER_TAG

    tags = {**(tags or {TRIGGER_TAG: SENSOR}), "dagster/partition": partition}
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(tags=tags), limit=1)
        return runs[0].run_id if runs else None


def _dataset_formed(partition: str) -> bool:
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.get() as instance:
        return partition in instance.get_materialized_partitions(AssetKey("dataset"))


def launch_retraining(
    instance: DagsterInstance, env: dict[str, str], partition: str, trigger: str, cwd=None
) -> str:
    """Submit retraining_job for ``partition`` to the run queue, as the UI's launchpad does;
    returns the new run's id. ``cwd`` holds the ``workspace.yaml`` to load."""
    from dagster import RunsFilter

    from azaion_assets.lib.training.retrain_policy import TRIGGER_TAG

    tags = {"dagster/partition": partition, TRIGGER_TAG: trigger}
    mine = RunsFilter(job_name="retraining_job", tags=tags)  # sensors may add runs meanwhile
    before = {r.run_id for r in instance.get_runs(mine)}
    cmd = [_tool("dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "retraining_job"]
    subprocess.run([*cmd, "--tags", json.dumps(tags)], cwd=cwd, env=env, check=True)
    (run_id,) = {r.run_id for r in instance.get_runs(mine)} - before
    return run_id


def wait_for(what: str, probe, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while (found := probe()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen in {timeout:.0f}s; see the log above")
        time.sleep(every)
    return found


def run_status(run_id: str) -> str | None:
    """The run's status once it has finished, else None."""
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        status = run.status.value if run else "missing"
        return status if status in FINISHED else None


def run_demo(settings: Settings, count: int, seed: int, partition: str) -> int:
    from dagster import DagsterInstance

    with broker_for(settings) as (target, broker_env), release_services_for(settings) as rel_env:
        env = {**os.environ, **broker_env, **rel_env}
        env.setdefault("STREAM_SENSOR_INTERVAL_SECONDS", "5")
        env.setdefault("RELEASE_SENSOR_INTERVAL_SECONDS", "5")
        env.setdefault("STREAM_BATCH_MESSAGES", str(max(10, count // 3)))
        env.setdefault("RETRAIN_SENSOR_INTERVAL_SECONDS", "5")
        tail, validated = publish_demo_set(target, count, seed)
        # Retrain once everything this demo published has landed.
        env.setdefault("RETRAIN_MIN_NEW_VALIDATED", str(validated))
        _prime_instance()
        started = time.monotonic()
        today = datetime.now(UTC).date().isoformat()
        automatic = partition == today and not _dataset_formed(today)
        with daemon(env):
            ingested = wait_for_ingest(tail, timeout=600)
            print(
                f"sensor and runs ingested {len(ingested)} partitions "
                f"in {time.monotonic() - started:.0f}s: {', '.join(ingested)}"
            )
            if automatic:
                print(f"waiting for retraining_sensor ({validated} new validated annotations) ...")
                run_id = wait_for("retraining_sensor's request", lambda: _sensor_run(today), 300)
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
            return _release(settings, env, partition)


def _is_champion(settings: Settings, partition: str) -> bool:
    from azaion_assets.lib.config.datatree import DataTree
    from azaion_assets.lib.release.champion_files import held_partition

    return held_partition(DataTree.from_settings(settings).champion) == partition


def _release(settings: Settings, env: dict[str, str], partition: str) -> int:
    """Wait for model_release_sensor's release run, then fetch the release back."""
    from azaion_assets.defs.release.model_release_sensor import SENSOR
    from azaion_assets.lib.config.datatree import DataTree

    print("waiting for model_release_sensor to release the new champion ...")
    by_sensor = {"dagster/sensor_name": SENSOR}
    run_id = wait_for(
        "model_release_sensor's request", lambda: _sensor_run(partition, by_sensor), 300
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
