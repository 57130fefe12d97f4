"""Benchmark: a ``retraining_job`` run through ``dagster-daemon``, its steps forked from a server
that preloaded the code location (what ships) against steps spawned afresh (Dagster's default).

Run with ``python -m bench.retraining_steps [--repeat R] [--images N]``.

A fresh instance on the root ``dagster.yaml`` (queued runs, host processes) and the daemon on a
workspace holding the project's definitions plus ``retraining_job_spawned``: the same assets, checks
and tags with the default multiprocess executor. The two jobs are launched alternately through the
``dagster`` CLI, as the UI's launchpad does, each for a day of its own, on the same N synthetic
annotations with the tiny CPU profile of the training-run tests (4 epochs at 96). The figure is each
run's wall time (the run worker's start to its end) and the gap before each step starts (the process
it waits for), medians of R runs each; the ratio is forked over spawned. Training dominates a
production run on a GPU server, so the saving there is per step, not per epoch: this measures that
saving, at the size where it shows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from azaion_assets.dev.localdaemon import local_daemon
from azaion_assets.dev.synthetic import write_samples
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.settings import Settings
from bench.timing import load_average

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FORKED, SPAWNED = "retraining_job", "retraining_job_spawned"
TINY = {
    "TRAINING_MODEL": "yolo26n.yaml",
    "TRAINING_EPOCHS": "4",
    "TRAINING_IMGSZ": "96",
    "TRAINING_BATCH_SIZE": "4",
    "TRAINING_OPTIMIZER": "AdamW",
    "TRAINING_LR0": "0.002",
    "TRAINING_WORKERS": "0",
    "TRAINING_PLOTS": "false",
    "EXPORT_ONNX_IMGSZ": "128",
    "EXPORT_PARITY_IMAGES": "4",
    "RETRAIN_MIN_TEST_MAP50_95": "0",
    "RETRAIN_MIN_NEW_VALIDATED": "1000000000",  # the sensor never asks: the bench launches
}
DONE = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@dg.definitions
def defs() -> dg.Definitions:
    """The workspace's code location: the project's, plus the baseline job."""

    from azaion_assets.defs.location import build_definitions, location_settings
    from azaion_assets.defs.resources import AzaionSettingsResource
    from azaion_assets.defs.training.retraining_job import TRAINING_ASSETS
    from azaion_assets.lib.training.retrain_policy import training_run_tags

    tags = training_run_tags(location_settings(AzaionSettingsResource()))
    spawned = dg.define_asset_job(SPAWNED, selection=TRAINING_ASSETS, tags=tags)
    return dg.Definitions.merge(build_definitions(), dg.Definitions(jobs=[spawned]))


def _launch(env: dict[str, str], cwd: Path, job: str, day: str) -> None:
    argv = [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", job]
    tags = json.dumps({"dagster/partition": day})
    subprocess.run([*argv, "--tags", tags], cwd=cwd, env=env, check=True, capture_output=True)


def _timings(instance: DagsterInstance, run_id: str) -> tuple[float, float]:
    """The run's wall time, and the summed gaps before its steps started."""
    (record,) = instance.get_run_records(RunsFilter(run_ids=[run_id]))
    assert record.start_time is not None and record.end_time is not None
    previous, waits = record.start_time, 0.0
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            waits += entry.timestamp - previous
        if event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_START"):
            previous = entry.timestamp
    return record.end_time - record.start_time, waits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--images", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "dagster").mkdir()
        shutil.copy(REPO / "dagster.yaml", base / "dagster" / "dagster.yaml")
        module = {"module_name": "bench.retraining_steps", "attribute": "defs"}
        location = {**module, "location_name": "azaion_assets", "working_directory": str(REPO)}
        workspace = {"load_from": [{"python_module": location}]}
        (base / "workspace.yaml").write_text(json.dumps(workspace))
        tree = DataTree.from_settings(Settings(azaion_root_dir=base / "azaion")).ensure()
        write_samples(tree.data, args.images, seed=11)
        env = {
            **{k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"},
            **TINY,
            "AZAION_ROOT_DIR": str(base / "azaion"),
            "DAGSTER_HOME": str(base / "dagster"),
            "DAILY_PARTITIONS_START": "2026-01-01",
            "PYTHONPATH": str(REPO),
        }
        figures: dict[str, list[tuple[float, float]]] = {FORKED: [], SPAWNED: []}
        with (
            local_daemon(base / "workspace.yaml", base, env, base / "daemon.log"),
            DagsterInstance.from_config(str(base / "dagster")) as instance,
        ):
            days = iter(f"2026-11-{d:02d}" for d in range(1, 29))
            for _ in range(args.repeat):
                for job in (SPAWNED, FORKED):  # alternately: drift hits both
                    _launch(env, base, job, next(days))
                    while not (runs := instance.get_runs(RunsFilter(job_name=job), limit=1)) or (
                        runs[0].status not in DONE
                    ):
                        time.sleep(0.5)
                    if runs[0].status != DagsterRunStatus.SUCCESS:
                        errors = [e.message for e in instance.all_logs(runs[0].run_id)]
                        raise SystemExit(f"{job} run failed:\n" + "\n".join(errors[-8:]))
                    figures[job].append(_timings(instance, runs[0].run_id))
                    print(f"{job:24s} run {figures[job][-1][0]:5.1f} s  (load {load_average()})")
    median = {
        job: (statistics.median(w for w, _ in f), statistics.median(s for _, s in f))
        for job, f in figures.items()
    }
    for job, (wall, waits) in median.items():
        print(f"{job:24s} median run {wall:5.1f} s, waiting for step processes {waits:5.1f} s")
    ratio = median[FORKED][0] / median[SPAWNED][0]
    print(f"forked / spawned run time: {ratio:.2f}x  (load {load_average()})")


if __name__ == "__main__":
    main()
