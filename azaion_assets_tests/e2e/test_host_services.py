"""The host processes of ``deploy/systemd`` at work: the code server and the daemon started with
the exact command lines of their units (the venv the units assume replaced by this one), each in
a session of its own, with the settings from a copy of ``.env.example`` read as systemd reads
an ``EnvironmentFile=``, ingesting a backlog from a real broker.

The daemon is stopped as systemd stops it (SIGTERM to its whole process group, which stands for
its cgroup) while an ingest run is in flight: the run goes on and succeeds without the daemon,
since its worker is the code server's child, and once the daemon is back every offset is
ingested exactly once. A code server restarted in the documented order (daemon stopped first,
the daemon started once the code server serves) fails no run either, and its old process exits
after its last run. The contrast: with the root ``workspace.yaml`` (``python_module``, the
daemon's own code server) the daemon's stop takes the run down.

Written against what can be observed (runs tagged ``azaion/stage=ingest``, materialised
``annotations`` partitions, the ingest state and the files of the tree), not against how many
partitions one run covers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from azaion_assets.dev import hostservices
from azaion_assets.dev.instance_runs import ingested_through, wait_for
from azaion_assets.dev.localdaemon import start_in_session
from azaion_assets.dev.messages import Author, synthetic
from azaion_assets.lib.ingest.ingest_state import IngestState, state_file
from azaion_assets.lib.stream.client import probe_tail, publish
from azaion_assets.lib.stream.events import Role
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets.lib.stream.stream_connection import StreamTarget
from azaion_assets_tests.conftest import assert_tiles

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "systemd"
BIN = Path(sys.executable).parent
INGEST = {"azaion/stage": "ingest"}
# Annotations by a validator (to data/) and an operator: enough that the one run carrying the
# backlog is still going when a stop (about a second) is done.
VALIDATED, SEEDED = 6000, 3000
STARTED = DagsterRunStatus.STARTED
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
DAEMON_STARTED = "Instance is configured with the following daemons"
DAEMON_STOPPED = "Daemon threads shut down"
PYTHON_MODULE_DAEMON = "python-module-daemon"  # `make dev`'s daemon: stopped as the daemon unit


@dataclass
class Host:
    """A data tree, a Dagster instance and the settings, as the units would see them, and the
    units started here (by unit file name; PYTHON_MODULE_DAEMON is `make dev`'s daemon)."""

    base: Path
    env: dict[str, str]
    instance: DagsterInstance
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return Path(self.env["AZAION_ROOT_DIR"])

    def log(self, unit: str) -> Path:
        return self.base / f"{unit}.log"  # as journald keeps it: every start of the unit

    def _cwd(self, unit: str) -> Path:
        """WorkingDirectory=: the code server's own, the others' holds workspace.yaml."""
        return self.base / ("code" if unit == hostservices.CODE_SERVER else "svc")

    def start(self, unit: str) -> None:
        """As ``systemctl start``: ExecStart=, then each ExecStartPost= to its end."""
        if unit == PYTHON_MODULE_DAEMON:
            argv = [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")]
            posts = []
        else:
            argv = hostservices.service_argv(UNITS / unit, BIN)
            posts = hostservices.service_commands(UNITS / unit, "ExecStartPost", BIN)
        with open(self.log(unit), "ab") as log:
            self.procs[unit] = start_in_session(argv, self._cwd(unit), self.env, log)
            for post in posts:
                subprocess.run(
                    post, cwd=self._cwd(unit), env=self.env, stdout=log, stderr=log, check=True
                )

    def stop(self, unit: str) -> float:
        """As ``systemctl stop`` (the unit's KillMode= and TimeoutStopSec=); returns the time
        when it is done: the main process has exited, and with control-group all the rest."""
        parsed = hostservices.read_unit(
            UNITS / (hostservices.DAEMON if unit == PYTHON_MODULE_DAEMON else unit)
        )
        kill_mode = hostservices.setting(parsed, "Service", "KillMode", "control-group")
        timeout = float(hostservices.setting(parsed, "Service", "TimeoutStopSec", "90") or 90)
        hostservices.stop(self.procs.pop(unit), kill_mode or "control-group", timeout)
        return time.time()

    def wait_finished(self, run_id: str, timeout: float) -> DagsterRunStatus:
        return wait_for(
            f"run {run_id} to finish", lambda: self._finished(run_id), timeout, every=0.2
        )

    def _finished(self, run_id: str) -> DagsterRunStatus | None:
        status = self.status(run_id)
        return status if status in FINISHED else None

    def ingest_runs(self, *statuses: DagsterRunStatus) -> list[DagsterRun]:
        filters = RunsFilter(tags=INGEST, statuses=list(statuses) or None)
        return list(self.instance.get_runs(filters))

    def started_run(self) -> DagsterRun | None:
        return next(iter(self.ingest_runs(STARTED)), None)

    def status(self, run_id: str) -> DagsterRunStatus:
        run = self.instance.get_run_by_id(run_id)
        assert run is not None
        return run.status

    def ingested_up_to(self, tail: int) -> list[str] | None:
        """The partition keys once every offset up to ``tail`` is in a materialised one and no
        ingest run is left to finish (the condition of ``dev.instance_runs.wait_for_ingest``)."""
        keys = ingested_through(self.instance, tail)
        runs = self.ingest_runs()
        failed = [r.run_id for r in runs if r.status in FINISHED - {DagsterRunStatus.SUCCESS}]
        assert not failed, f"ingest runs did not succeed: {failed}; see {self.base}/*.log"
        busy = [r for r in runs if r.status not in FINISHED]
        return keys if keys is not None and not busy else None


@pytest.fixture
def host(tmp_path: Path, stream: StreamTarget, runtime_dir: Path) -> Iterator[Host]:
    """A fresh DAGSTER_HOME (the root dagster.yaml), data tree and env file for ``stream``, with
    a small batch size and a fast sensor; everything started here is stopped at the end."""
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    for sub in ("svc", "code"):  # the daemon's working directory, and the code server's
        (tmp_path / sub).mkdir()
    shutil.copy(UNITS / "workspace.yaml", tmp_path / "svc" / "workspace.yaml")
    settings = {
        "AZAION_ROOT_DIR": str(tmp_path / "azaion"),
        "AZAION_RUNTIME_DIR": str(runtime_dir),
        **stream.as_env(),
        "STREAM_BATCH_MESSAGES": "1000",
        "STREAM_MAX_DELAY_SECONDS": "5",  # a backlog of fewer: not a minute's wait per test
        "STREAM_SENSOR_INTERVAL_SECONDS": "5",
        "RETRAIN_MIN_NEW_VALIDATED": "1000000",  # no training here
    }
    env_file = tmp_path / "azaion-assets.env"  # the operator's copy of .env.example
    lines = (REPO / ".env.example").read_text("utf-8").splitlines()
    lines = [ln for ln in lines if ln.partition("=")[0] not in settings]
    env_file.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in settings.items())]) + "\n")
    unit = hostservices.read_unit(UNITS / hostservices.CODE_SERVER)
    env = {
        **os.environ,  # PATH, PYTHONPATH; no settings (clean_env)
        **hostservices.environment(unit),
        "DAGSTER_HOME": str(home),  # Environment=, pointed here
        **hostservices.read_env_file(env_file),  # EnvironmentFile=
    }
    # The SQLite storage exists before the daemon and the code server race to create it.
    with DagsterInstance.from_config(str(home)) as instance:
        found = Host(tmp_path, env, instance)
        try:
            yield found
        finally:
            for proc in reversed(found.procs.values()):
                hostservices.stop(proc, "control-group", timeout=30)


def publish_backlog(stream: StreamTarget) -> int:
    """Annotations by a validator and by an operator; returns the tail offset."""
    validator = Author(Role.VALIDATOR, "validator@azaion.local")
    operator = Author(Role.OPERATOR, "operator@azaion.local")
    batch = [
        *synthetic(VALIDATED, validator, seed=1, prefix="validated"),
        *synthetic(SEEDED, operator, seed=2, prefix="seeded"),
    ]
    asyncio.run(publish(stream, batch))
    tail = asyncio.run(probe_tail(stream, timeout=10))
    assert tail == VALIDATED + SEEDED - 1
    return tail


def stop_during_a_run(host: Host, daemon: str) -> tuple[str, DagsterRunStatus, float]:
    """Stop the ``daemon`` unit as systemd does while an ingest run is in flight; returns the
    run, its status once the daemon (all of its group) is gone, and when that was. A run that
    ends during the stop (about a second) proves nothing: then the daemon is started again
    and the next run is taken."""
    seen: set[str] = set()
    for _ in range(4):

        def next_started() -> DagsterRun | None:
            runs = host.ingest_runs(DagsterRunStatus.STARTED)
            return next((r for r in runs if r.run_id not in seen), None)

        run = wait_for("an ingest run to start", next_started, timeout=120, every=0.1)
        seen.add(run.run_id)
        stopped_at = host.stop(daemon)
        after = host.status(run.run_id)
        if after != DagsterRunStatus.SUCCESS:
            return run.run_id, after, stopped_at
        host.start(daemon)
    raise AssertionError("every ingest run ended before the daemon had stopped")


def assert_ingested_once(host: Host, keys: list[str], tail: int) -> None:
    """Every ingest run succeeded; the partitions tile the offsets, each materialised once by
    one of those runs; each offset was applied once; the tree holds every annotation."""
    runs = host.ingest_runs()
    assert {r.status for r in runs} == {DagsterRunStatus.SUCCESS}, [
        (r.run_id, r.status) for r in runs
    ]
    assert_tiles(keys, 0, OffsetRange.parse(keys[-1]).last)  # blocks, the last one open
    assert OffsetRange.parse(keys[-1]).first <= tail
    records = host.instance.fetch_materializations(AssetKey("annotations"), limit=1000).records
    assert Counter(r.partition_key for r in records) == Counter(keys)
    segments = sorted(
        (r.asset_materialization.metadata["range_first"].value,  # type: ignore[union-attr]
         r.asset_materialization.metadata["range_last"].value)  # type: ignore[union-attr]
        for r in records
    )  # fmt: skip
    assert segments[0][0] == 0 and segments[-1][1] == tail
    assert {r.run_id for r in records} <= {r.run_id for r in runs}

    # Each offset applied once: every name's log holds the one event it was sent in.
    names = [f"validated_0001_{i:06d}" for i in range(VALIDATED)]
    names += [f"seeded_0002_{i:06d}" for i in range(SEEDED)]
    with IngestState(state_file(host.root)) as state:
        logs = state.load(names)
        assert state.totals()["messages"] == tail + 1
    offsets = sorted(offset for log in logs.values() for offset, _ in log.log)
    assert offsets == list(range(tail + 1))
    for folder, count in (("data", VALIDATED), ("data-seed", SEEDED)):
        assert len(list((host.root / folder / "labels").glob("*.txt"))) == count, folder
        assert len(list((host.root / folder / "images").iterdir())) == count, folder


def test_a_daemon_restart_leaves_the_in_flight_ingest_run_alone(host: Host, stream: StreamTarget):
    if not hostservices.port_free("127.0.0.1", 4000):
        pytest.fail("port 4000 (the code server unit's) is taken: stop what listens there")
    tail = publish_backlog(stream)
    host.start(hostservices.CODE_SERVER)
    host.start(hostservices.DAEMON)

    # With the daemon gone (all of it), the run it launched goes on and succeeds.
    survivor, after, stopped_at = stop_during_a_run(host, hostservices.DAEMON)
    assert after == DagsterRunStatus.STARTED
    assert host.wait_finished(survivor, timeout=120) == DagsterRunStatus.SUCCESS
    (record,) = host.instance.get_run_records(RunsFilter(run_ids=[survivor]))
    assert record.end_time is not None and record.end_time > stopped_at

    host.start(hostservices.DAEMON)
    keys = wait_for("the ingest of the backlog", lambda: host.ingested_up_to(tail), 150, every=1)
    assert_ingested_once(host, keys, tail)

    # The daemon's log shows it stopped and came back (its sensor ticks again); nothing failed
    # to launch. (A run may cover the whole backlog, so the survivor may have left it no work.)
    def back() -> str | None:
        log = host.log(hostservices.DAEMON).read_text("utf-8", errors="replace")
        again = log.rfind(DAEMON_STARTED)
        ticking = log.count(DAEMON_STARTED) >= 2 and "annotation_stream_sensor" in log[again:]
        return log if ticking else None

    log = wait_for("the daemon to tick again", back, 120, every=0.5)
    assert log.count(DAEMON_STARTED) >= 2 and log.count(DAEMON_STOPPED) >= 1
    assert log.index(DAEMON_STOPPED) < log.rindex(DAEMON_STARTED)
    assert "Caught an error dequeuing run" not in log


def test_a_code_server_restart_in_the_documented_order_fails_no_run(
    host: Host, stream: StreamTarget
):
    """docs/host-processes.md: stop the daemon, restart the code server (back once it
    serves), start the daemon. The code server's stop signals its proxy only; its old
    `dagster api grpc` child finishes the run in flight and then exits."""
    if not hostservices.port_free("127.0.0.1", 4000):
        pytest.fail("port 4000 (the code server unit's) is taken: stop what listens there")
    tail = publish_backlog(stream)
    host.start(hostservices.CODE_SERVER)
    host.start(hostservices.DAEMON)
    wait_for("an ingest run to start", host.started_run, 120, 0.1)
    old = psutil.Process(host.procs[hostservices.CODE_SERVER].pid).children()
    assert old and all(p.cmdline()[1:5] == ["-m", "dagster", "api", "grpc"] for p in old)

    host.stop(hostservices.DAEMON)
    host.stop(hostservices.CODE_SERVER)
    host.start(hostservices.CODE_SERVER)
    host.start(hostservices.DAEMON)
    keys = wait_for("the ingest of the backlog", lambda: host.ingested_up_to(tail), 150, every=1)
    assert_ingested_once(host, keys, tail)
    log = host.log(hostservices.DAEMON).read_text("utf-8", errors="replace")
    assert "Caught an error dequeuing run" not in log

    # Nothing is left behind: the old child went once its runs were done.
    def running(proc: psutil.Process) -> bool:
        try:
            return proc.status() != psutil.STATUS_ZOMBIE  # an orphan's reaper may be slow
        except psutil.NoSuchProcess:
            return False

    wait_for(
        "the old code server's child to exit",
        lambda: None if any(map(running, old)) else True,
        60,
        every=0.2,
    )


def test_with_the_daemons_own_code_server_runs_share_the_daemons_process_group(
    host: Host, stream: StreamTarget
):
    """The contrast (docs/host-processes.md): with the root workspace.yaml the daemon spawns the
    code server, and so the run workers it starts, in the daemon's own process group: stopping
    the daemon as systemd does (SIGTERM to the group, SIGKILL at the timeout) reaches its runs.
    With the units, a run worker belongs to the code server's group, which a daemon stop leaves
    alone (``test_a_daemon_restart_leaves_the_in_flight_ingest_run_alone``)."""
    publish_backlog(stream)
    host.start(PYTHON_MODULE_DAEMON)
    daemon = psutil.Process(host.procs[PYTHON_MODULE_DAEMON].pid)

    def code_servers() -> list[psutil.Process] | None:
        found = [p for p in daemon.children(recursive=True) if "grpc" in p.cmdline()]
        return found or None

    servers = wait_for("the daemon's code server", code_servers, 120, 0.2)
    assert {os.getpgid(p.pid) for p in servers} == {os.getpgid(daemon.pid)}
    wait_for("an ingest run to start", host.started_run, 120, 0.1)
