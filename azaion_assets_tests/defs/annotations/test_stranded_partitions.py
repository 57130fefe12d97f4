"""Offsets whose run died land without an operator: a real ``dagster-daemon`` (the root
``dagster.yaml``, the project's workspace) runs the stream sensor and the ingest runs, and the
test SIGKILLs an ingest run's worker before it materialises anything."""

import asyncio
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from azaion_assets.defs.annotations.stranded_partitions import IN_FLIGHT
from azaion_assets.defs.partitions import ANNOTATION_BATCHES
from azaion_assets.dev.instance_runs import ingested_through, wait_for
from azaion_assets.dev.localdaemon import local_daemon
from azaion_assets.dev.messages import Author, synthetic
from azaion_assets.lib.stream.client import probe_tail, publish
from azaion_assets.lib.stream.offsets import OffsetRange

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
INGEST = {"azaion/stage": "ingest"}


def _worker_of(instance: DagsterInstance, run_id: str) -> psutil.Process | None:
    """The run's worker process, from the event it logs as it starts."""
    for entry in instance.all_logs(run_id):
        match = re.match(r"Started process for run \(pid: (\d+)\)", entry.message or "")
        if match:
            return psutil.Process(int(match[1]))
    return None


class _QueueWatch(threading.Thread):
    """Samples the ingest runs in flight (queued, starting, started) until stopped."""

    def __init__(self, instance: DagsterInstance) -> None:
        super().__init__(daemon=True)
        self.instance, self.most, self.done = instance, 0, threading.Event()

    def run(self) -> None:
        in_flight = RunsFilter(tags=INGEST, statuses=IN_FLIGHT)
        while not self.done.is_set():
            self.most = max(self.most, len(self.instance.get_run_ids(in_flight)))
            time.sleep(0.1)


def test_offsets_whose_run_worker_was_killed_land_without_an_operator_one_run_at_a_time(
    stream_env, root: Path, tmp_path: Path
):
    """The worker of the backlog's run is killed; more annotations arrive while the sensor
    requests the same offsets again: they wait for that run, then land in one more. Never more
    than one ingest run is in flight."""
    # Enough messages that the run is still reading when its worker is killed.
    batch = list(synthetic(1500, Author(), seed=3, width=320, height=240))
    asyncio.run(publish(stream_env, batch))
    tail = asyncio.run(probe_tail(stream_env))
    assert tail is not None
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "STREAM_BATCH_MESSAGES": "500",
        "STREAM_MAX_DELAY_SECONDS": "5",
        "RETRAIN_MIN_NEW_VALIDATED": "100000000",
    }
    with (
        DagsterInstance.from_config(str(home)) as instance,
        local_daemon(REPO / "workspace.yaml", REPO, env, tmp_path / "daemon.log"),
    ):
        watch = _QueueWatch(instance)
        watch.start()
        started = RunsFilter(tags=INGEST, statuses=[DagsterRunStatus.STARTED])
        run = wait_for(
            "the first ingest run to start",
            lambda: next(iter(instance.get_runs(started, limit=1)), None),
            180,
            every=0.2,
        )
        worker = wait_for("its run worker", lambda: _worker_of(instance, run.run_id), 180, 0.2)
        worker.send_signal(signal.SIGKILL)
        assert not instance.get_materialized_partitions(AssetKey("annotations"))
        assert run.tags["azaion/offsets"] == OffsetRange(0, tail).key  # the backlog, one run
        more = list(synthetic(40, Author(), seed=4, prefix="later", width=64, height=48))
        asyncio.run(publish(stream_env, more))
        new_tail = asyncio.run(probe_tail(stream_env))
        assert new_tail is not None

        def landed():
            return ingested_through(instance, new_tail)

        wait_for("every offset to land", landed, 240, every=0.2)
        watch.done.set()
        watch.join()
        killed = instance.get_run_by_id(run.run_id)
        assert killed is not None and killed.status == DagsterRunStatus.FAILURE
        runs = instance.get_runs(RunsFilter(tags=INGEST), ascending=True)
        offsets = [r.tags["azaion/offsets"] for r in runs]
        # The same offsets again, then the ones that arrived meanwhile, once.
        assert offsets == [OffsetRange(0, tail).key] * 2 + [OffsetRange(tail + 1, new_tail).key]
        assert [r.status for r in runs[1:]] == [DagsterRunStatus.SUCCESS] * 2
        assert watch.most == 1  # never a second ingest run queued behind the first
        keys = instance.get_dynamic_partitions(ANNOTATION_BATCHES)
        assert len(keys) == 4 and OffsetRange.parse(keys[-1]).first <= new_tail
    names = list((root / "data" / "labels").glob("*.txt"))
    assert len(names) == 1540  # nothing lost
