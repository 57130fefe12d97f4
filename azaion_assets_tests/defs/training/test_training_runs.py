"""Training runs as the GPU server runs them: queued, launched and retried by a real
``dagster-daemon`` on the root ``dagster.yaml`` (QueuedRunCoordinator, DefaultRunLauncher host
processes, run retries), with runs submitted through the ``dagster`` CLI like the UI does.

One daemon serves the module; each test uses its own daily partitions.
"""

import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus, RunsFilter

from azaion_assets.dev.instance_runs import launch_retraining
from azaion_assets.dev.localapi import LocalAzaionApi
from azaion_assets.dev.localcdn import LocalCdn
from azaion_assets.dev.localdaemon import local_daemon
from azaion_assets.dev.synthetic import write_samples
from azaion_assets.lib.champion.files import held_partition
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.release.azaion_api import AzaionApi
from azaion_assets.lib.release.hardware import fingerprint
from azaion_assets.lib.release.reassembly import fetch
from azaion_assets.lib.training.checkpoints import find_resumable
from azaion_assets.lib.training.offline import prepare_ultralytics
from azaion_assets_tests.conftest import (
    API_EMAIL,
    API_PASSWORD,
    CONFIG_PREFIXES,
    MODEL_KEY,
    TINY_PROFILE,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
EPOCHS = 4
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@dataclass
class Server:
    """A Dagster instance served by a daemon, and the environment its runs see."""

    base: Path
    env: dict[str, str]
    instance: DagsterInstance
    tree: DataTree
    api: LocalAzaionApi  # where model_release_sensor's runs ship the champion

    def launch(self, partition: str, epochs: int | None = None) -> str:
        """Submit retraining_job for ``partition`` as the UI's launchpad would (``epochs``: its
        override); returns its id."""
        return launch_retraining(
            self.instance, self.env, partition, "test", cwd=self.base, epochs=epochs
        )

    def status(self, run_id: str) -> DagsterRunStatus:
        run = self.instance.get_run_by_id(run_id)
        assert run is not None
        return run.status

    def wait(self, condition: Callable[[], object], what: str, timeout: float = 300) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = condition()
            if found:
                return found
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}")

    def wait_finished(self, run_id: str, timeout: float = 300) -> DagsterRunStatus:
        self.wait(lambda: self.status(run_id) in FINISHED, f"run {run_id} to finish", timeout)
        return self.status(run_id)

    def messages(self, run_id: str) -> list[str]:
        return [e.message for e in self.instance.all_logs(run_id) if e.message]

    def wait_for_log(self, run_id: str, text: str) -> None:
        def seen() -> bool:
            if self.status(run_id) in FINISHED:
                raise AssertionError(f"run ended before logging {text!r}: {self.status(run_id)}")
            return any(text in m for m in self.messages(run_id))

        self.wait(seen, f"{text!r} in the logs of {run_id}")

    def step_pid(self, run_id: str, step: str) -> int:
        for entry in self.instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None or event.event_type_value != "STEP_START":
                continue
            if event.step_key == step and event.pid is not None:
                return event.pid
        raise AssertionError(f"no STEP_START for {step} in run {run_id}")

    def model_metadata(self, partition: str) -> dict:
        records = self.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("model"), asset_partitions=[partition]),
            limit=1,
        ).records
        assert records, f"model {partition} was never materialised"
        materialization = records[0].asset_materialization
        assert materialization is not None
        return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def _env(base: Path, runtime_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
    env.pop("DAGSTER_HOME", None)
    return {
        **env,
        **TINY_PROFILE,
        "TRAINING_EPOCHS": str(EPOCHS),
        "TRAINING_BATCH_SIZE": "4",  # several batches per epoch: a cancel lands between two
        "TRAINING_PLOTS": "false",
        "AZAION_ROOT_DIR": str(base / "azaion"),
        "AZAION_RUNTIME_DIR": str(runtime_dir),
        "DAGSTER_HOME": str(base / "dagster"),
        "RETRAIN_MIN_NEW_VALIDATED": "1000000",  # these tests launch runs themselves
        "DAILY_PARTITIONS_START": "2026-01-01",  # the days they launch exist
    }


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, runtime_dir: Path, local_cdn: LocalCdn
) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("daemon")
    (base / "dagster").mkdir()
    shutil.copy(REPO / "dagster.yaml", base / "dagster" / "dagster.yaml")
    workspace = {
        "load_from": [
            {
                "python_module": {
                    "module_name": "azaion_assets.definitions",
                    "location_name": "azaion_assets",
                    "working_directory": str(base),
                }
            }
        ]
    }
    (base / "workspace.yaml").write_text(json.dumps(workspace))
    tree = DataTree.from_settings(Settings(azaion_root_dir=base / "azaion")).ensure()
    write_samples(tree.data, 40, seed=11)
    with LocalAzaionApi(API_EMAIL, API_PASSWORD) as api:
        local_cdn.provision(api, f"azaion-daemon-{base.name.lower()}", "config")
        env = {**_env(base, runtime_dir), **_release_env(api.url)}
        with (
            local_daemon(base / "workspace.yaml", base, env, base / "daemon.log"),
            DagsterInstance.from_config(str(base / "dagster")) as instance,
        ):
            yield Server(base, env, instance, tree, api)


def _release_env(url: str) -> dict[str, str]:
    return {
        "AZAION_API_URL": url,
        "AZAION_API_EMAIL": API_EMAIL,
        "AZAION_API_PASSWORD": API_PASSWORD,
        "MODEL_ENCRYPTION_KEY": MODEL_KEY,
        "RELEASE_SENSOR_INTERVAL_SECONDS": "5",
        "AZAION_API_BACKOFF_SECONDS": "0.1",
    }


def _interval(server: Server, run_id: str) -> tuple[float, float]:
    (record,) = server.instance.get_run_records(RunsFilter(run_ids=[run_id]))
    assert record.start_time is not None and record.end_time is not None
    return record.start_time, record.end_time


def test_two_requested_trainings_never_overlap(server: Server):
    # One epoch each: the queue is what is tested here, not the training.
    first = server.launch("2026-11-20", epochs=1)
    second = server.launch("2026-11-21", epochs=1)
    # While the first holds the GPU, the second waits in the queue.
    server.wait(lambda: server.status(first) == DagsterRunStatus.STARTED, "the first run")
    assert server.status(second) == DagsterRunStatus.QUEUED
    assert server.wait_finished(first) == DagsterRunStatus.SUCCESS
    assert server.wait_finished(second) == DagsterRunStatus.SUCCESS
    (start_1, end_1), (start_2, end_2) = _interval(server, first), _interval(server, second)
    assert end_1 <= start_2, f"overlap: {start_1}-{end_1} and {start_2}-{end_2}"
    run = server.instance.get_run_by_id(second)
    assert run is not None and run.tags["azaion/gpu"] == "auto"
    assert server.model_metadata("2026-11-21")["training_run"]["epochs"] == 1


def test_a_training_whose_process_died_is_retried_and_resumes(server: Server):
    partition = "2026-11-22"
    run_id = server.launch(partition)
    server.wait_for_log(run_id, f"epoch 1/{EPOCHS}")
    os.kill(server.step_pid(run_id, "model"), signal.SIGKILL)  # as the OOM killer would
    assert server.wait_finished(run_id) == DagsterRunStatus.FAILURE

    def retry() -> str | None:
        runs = server.instance.get_runs(RunsFilter(tags={"dagster/parent_run_id": run_id}))
        return runs[0].run_id if runs else None

    retry_id = str(server.wait(retry, "the automatic retry", timeout=120))
    assert server.wait_finished(retry_id) == DagsterRunStatus.SUCCESS
    meta = server.model_metadata(partition)
    assert meta["training_start"] == "resume", meta["training_start_reason"]
    run = meta["training_run"]
    assert run["resumed_after_epoch"] >= 1 and run["epochs"] == EPOCHS


def test_a_cancelled_training_stops_at_a_batch_and_the_next_run_resumes(
    server: Server, runtime_dir: Path
):
    partition = "2026-11-23"
    run_id = server.launch(partition)
    server.wait_for_log(run_id, f"epoch 1/{EPOCHS}")
    assert server.instance.run_launcher.terminate(run_id)  # what the UI's Terminate calls
    assert server.wait_finished(run_id, timeout=120) == DagsterRunStatus.CANCELED
    assert any("cancelled: stopped during epoch" in m for m in server.messages(run_id))
    prepare_ultralytics(runtime_dir)  # reading a checkpoint imports Ultralytics
    staging = server.tree.models / f".azaion-{partition}.training"
    checkpoint = find_resumable(staging / "weights", EPOCHS)
    assert checkpoint is not None and checkpoint.epoch >= 0
    assert not server.tree.model_dir(partition).exists()
    assert not server.instance.get_runs(RunsFilter(tags={"dagster/parent_run_id": run_id}))

    again = server.launch(partition)
    assert server.wait_finished(again) == DagsterRunStatus.SUCCESS
    meta = server.model_metadata(partition)
    assert meta["training_start"] == "resume"
    assert meta["training_run"]["resumed_after_epoch"] == checkpoint.epoch + 1


def test_the_champion_reaches_the_edge_through_the_release_sensor(server: Server, tmp_path):
    """model_release_sensor, on the daemon, releases the newest champion. In file order the
    trainings above have promoted one (maybe more) by now; run alone, this test trains one."""
    if held_partition(server.tree.champion) is None:
        assert server.wait_finished(server.launch("2026-11-25")) == DagsterRunStatus.SUCCESS
    champion = held_partition(server.tree.champion)
    assert champion not in (None, "unknown"), champion

    def released():
        filters = RunsFilter(job_name="model_release_job", tags={"dagster/partition": champion})
        runs = server.instance.get_runs(filters, limit=1)
        return runs[0] if runs and runs[0].status == DagsterRunStatus.SUCCESS else None

    run = server.wait(released, f"a successful release of {champion}", timeout=180)
    assert run.tags["dagster/sensor_name"] == "model_release_sensor"  # type: ignore[attr-defined]
    api = AzaionApi(server.api.url, API_EMAIL, API_PASSWORD)
    manifest = fetch(api, fingerprint(), MODEL_KEY, tmp_path / "edge", "models", "config")
    assert manifest["partition"] == champion
    assert (tmp_path / "edge" / "azaion.pt").read_bytes() == server.tree.champion.read_bytes()
    onnx = server.tree.champion_onnx.read_bytes()
    assert (tmp_path / "edge" / "azaion.onnx").read_bytes() == onnx
