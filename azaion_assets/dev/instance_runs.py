"""A real Dagster instance driven from outside, as an operator would: daemon, launches, waits.

The demo, the tests that cross processes and the benchmarks start ``dagster-daemon``, launch
jobs with the ``dagster`` command, and poll the instance until ingest has covered the stream,
a sensor has requested its run, or a run has finished.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster import DagsterInstance

FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def _tool(name: str) -> str:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or name


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


def prime_instance() -> None:
    """Create the instance's SQLite storage once, before the daemon and its code server start
    together and race to create it."""
    from dagster import DagsterInstance

    with DagsterInstance.get():
        pass


def ingested_through(instance: DagsterInstance, tail: int) -> list[str] | None:
    """The materialised annotations partitions, once the ingest has applied every offset up to
    ``tail`` (runs apply offsets in order, one at a time) and no ingest run is in flight; else
    None."""
    from dagster import AssetKey

    from azaion_assets.defs.annotations.stranded_partitions import ingest_in_flight
    from azaion_assets.defs.instance_facts import landed_through

    if landed_through(instance) < tail or ingest_in_flight(instance) is not None:
        return None
    return sorted(instance.get_materialized_partitions(AssetKey("annotations")))


def wait_for_ingest(tail: int, timeout: float) -> list[str]:
    """Until every offset up to ``tail`` is applied and no ingest run is in flight."""
    from dagster import DagsterInstance

    from azaion_assets.defs.annotations.stranded_partitions import ingest_in_flight
    from azaion_assets.defs.instance_facts import landed_through

    deadline = time.monotonic() + timeout
    with DagsterInstance.get() as instance:
        while (done := ingested_through(instance, tail)) is None:
            if time.monotonic() > deadline:
                run = ingest_in_flight(instance)
                flying = f"run {run.run_id[:8]} {run.status.value}" if run else "none"
                raise TimeoutError(
                    f"ingest did not reach offset {tail} in {timeout:.0f}s (applied through "
                    f"{landed_through(instance)}, ingest in flight: {flying}); see the daemon "
                    "log above"
                )
            time.sleep(2)
        return done


def sensor_run(partition: str, tags: dict[str, str] | None = None) -> str | None:
    from dagster import DagsterInstance, RunsFilter

    from azaion_assets.defs.training.retraining_sensor import SENSOR
    from azaion_assets.lib.training.retrain_policy import TRIGGER_TAG

    tags = {**(tags or {TRIGGER_TAG: SENSOR}), "dagster/partition": partition}
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(tags=tags), limit=1)
        return runs[0].run_id if runs else None


def dataset_formed(partition: str) -> bool:
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.get() as instance:
        return partition in instance.get_materialized_partitions(AssetKey("dataset"))


def launch_retraining(
    instance: DagsterInstance,
    env: dict[str, str],
    partition: str,
    trigger: str,
    cwd=None,
    epochs: int | None = None,
) -> str:
    """Submit retraining_job for ``partition`` to the run queue, as the UI's launchpad does;
    returns the new run's id. ``cwd`` holds the ``workspace.yaml`` to load; ``epochs``, the
    launchpad's override of the model's epochs."""
    from dagster import RunsFilter

    from azaion_assets.lib.training.retrain_policy import TRIGGER_TAG

    tags = {"dagster/partition": partition, TRIGGER_TAG: trigger}
    mine = RunsFilter(job_name="retraining_job", tags=tags)  # sensors may add runs meanwhile
    before = {r.run_id for r in instance.get_runs(mine)}
    cmd = [_tool("dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "retraining_job"]
    if epochs is not None:
        cmd += ["--config-json", json.dumps({"ops": {"model": {"config": {"epochs": epochs}}}})]
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


def monitor_run(sensor: str) -> str | None:
    """The newest run the champion monitor's sensor requested, if any."""
    from dagster import DagsterInstance, RunsFilter

    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(tags={"dagster/sensor_name": sensor}), limit=1)
        return runs[0].run_id if runs else None


def latest_metadata(asset: str) -> dict:
    """The metadata of the asset's latest materialisation, as plain values."""
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(AssetKey(asset))
        found = event.asset_materialization if event else None
        return {k: getattr(v, "value", v) for k, v in (found.metadata if found else {}).items()}
