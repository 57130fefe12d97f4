"""A partition whose run died lands without an operator: a real ``dagster-daemon`` (the root
``dagster.yaml``, the project's workspace) runs the stream sensor and the ingest runs, and the
test SIGKILLs an ingest run's worker before it materialises anything."""

import asyncio
import os
import re
import shutil
import signal
import time
from pathlib import Path

import psutil
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from azaion_assets.core.localdaemon import local_daemon
from azaion_assets.core.messages import Author, synthetic
from azaion_assets.core.offsets import OffsetRange
from azaion_assets.core.stream import probe_tail, publish
from azaion_assets.partitions import ANNOTATION_BATCHES
from azaion_assets.stranded_partitions import IN_FLIGHT

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
INGEST = {"azaion/stage": "ingest"}


def _wait(what: str, condition, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return value


def _worker_of(instance: DagsterInstance, run_id: str) -> psutil.Process | None:
    """The run's worker process, from the event it logs as it starts."""
    for entry in instance.all_logs(run_id):
        match = re.match(r"Started process for run \(pid: (\d+)\)", entry.message or "")
        if match:
            return psutil.Process(int(match[1]))
    return None


def test_a_partition_whose_run_worker_was_killed_lands_without_an_operator(
    stream_env, root: Path, tmp_path: Path
):
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
        "RETRAIN_MIN_NEW_VALIDATED": "100000000",
    }
    with (
        DagsterInstance.from_config(str(home)) as instance,
        local_daemon(REPO / "workspace.yaml", REPO, env, tmp_path / "daemon.log"),
    ):
        started = _wait(
            "the first ingest run to start",
            lambda: instance.get_runs(
                RunsFilter(tags=INGEST, statuses=[DagsterRunStatus.STARTED]), limit=1
            ),
        )
        run = started[0]
        worker = _wait("its run worker", lambda: _worker_of(instance, run.run_id))
        worker.send_signal(signal.SIGKILL)
        assert not instance.get_materialized_partitions(AssetKey("annotations"))

        keys = instance.get_dynamic_partitions(ANNOTATION_BATCHES)
        assert len(keys) == 3 and OffsetRange.parse(keys[-1]).last == tail

        def landed():
            done = instance.get_materialized_partitions(AssetKey("annotations"))
            return done if set(keys) <= done else None

        _wait("every partition to land", landed)
        _wait(
            "the runs to end",
            lambda: not instance.get_runs(RunsFilter(tags=INGEST, statuses=IN_FLIGHT)),
        )
        killed = instance.get_run_by_id(run.run_id)
        assert killed is not None and killed.status == DagsterRunStatus.FAILURE
        runs = instance.get_runs(RunsFilter(tags=INGEST))
        again = sorted(str(r.tags.get("dagster/partition")) for r in runs if r.run_id != run.run_id)
        assert again == keys  # each requested again, on its own, by the sensor
        assert all(r.status == DagsterRunStatus.SUCCESS for r in runs if r.run_id != run.run_id)
    names = sorted(p.stem for p in (root / "data" / "labels").glob("*.txt"))
    assert len(names) == 1500  # nothing lost
