"""A partition whose run died lands without an operator: a real ``dagster-daemon`` (the root
``dagster.yaml``, the project's workspace) runs the stream sensor and the ingest runs, and the
test SIGKILLs an ingest run's worker before it materialises anything."""

import asyncio
import os
import re
import shutil
import signal
from pathlib import Path

import psutil
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from azaion_assets.defs.annotations.stranded_partitions import IN_FLIGHT
from azaion_assets.defs.partitions import ANNOTATION_BATCHES
from azaion_assets.dev.instance_runs import wait_for
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

        keys = instance.get_dynamic_partitions(ANNOTATION_BATCHES)
        assert len(keys) == 3 and OffsetRange.parse(keys[-1]).last == tail

        def landed():
            done = instance.get_materialized_partitions(AssetKey("annotations"))
            return done if set(keys) <= done else None

        wait_for("every partition to land", landed, 180, every=0.2)
        in_flight = RunsFilter(tags=INGEST, statuses=IN_FLIGHT)
        wait_for(
            "the runs to end",
            lambda: None if instance.get_runs(in_flight) else True,
            180,
            every=0.2,
        )
        killed = instance.get_run_by_id(run.run_id)
        assert killed is not None and killed.status == DagsterRunStatus.FAILURE
        runs = instance.get_runs(RunsFilter(tags=INGEST))
        again = sorted(str(r.tags.get("dagster/partition")) for r in runs if r.run_id != run.run_id)
        assert again == keys  # each requested again, on its own, by the sensor
        assert all(r.status == DagsterRunStatus.SUCCESS for r in runs if r.run_id != run.run_id)
    names = sorted(p.stem for p in (root / "data" / "labels").glob("*.txt"))
    assert len(names) == 1500  # nothing lost
