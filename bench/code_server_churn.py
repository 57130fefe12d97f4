"""Benchmark: what an idle ``dagster-daemon`` costs with each workspace of the host processes.

Run with ``python -m bench.code_server_churn [--seconds S] [--poll P]`` (about 2 x S seconds).

The daemon runs for S seconds on a fresh ``DAGSTER_HOME`` (a copy of the root ``dagster.yaml``)
and an empty data tree, with the settings pointing at a broker port where nothing listens (each
``annotation_stream_sensor`` tick skips: broker unreachable), twice:

- python_module: the root ``workspace.yaml`` (``make dev``'s), with which the daemon spawns
  and manages its own code server (``dagster api grpc``);
- grpc_server: ``deploy/systemd``'s units, the standalone code server
  (``dagster code-server start``, a proxy and its ``dagster api grpc`` child) and the daemon on
  ``deploy/systemd/workspace.yaml``, started with the units' command lines.

Every P seconds it lists the processes of both trees (psutil): the code-server processes
started (distinct pids), how many were alive at once, their peak RSS, and the CPU seconds
(user + system) of every process, each counted at its last sample (a process that exits loses
at most P seconds), in all and a minute after the first minute (start-up left out: the rate
the daemon keeps up). The load average is printed beside each run: other work on the same cores
moves these figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from azaion_assets.dev import hostservices
from azaion_assets.dev.localbroker import free_port
from azaion_assets.dev.localdaemon import start_in_session
from bench.timing import load_average

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "deploy" / "systemd"
BIN = Path(sys.executable).parent
CONFIG_PREFIXES = ("AZAION_", "RABBITMQ_", "TRAINING_", "EXPORT_", "DATASET_", "STREAM_")
CONFIG_PREFIXES += ("RETRAIN_", "RELEASE_", "MODEL_", "K8S_", "DAGSTER_")


def is_code_server(cmdline: list[str]) -> bool:
    """``dagster api grpc ...`` (a managed server, or the proxy's child) or ``dagster
    code-server start`` (the proxy)."""
    text = " ".join(cmdline)
    return "dagster" in text and (" api grpc " in f"{text} " or " code-server start" in text)


@dataclass
class Sample:
    """What the trees used, over the samples so far."""

    cpu: dict[int, float] = field(default_factory=dict)  # pid -> user + system, last seen
    code_servers: dict[int, int] = field(default_factory=dict)  # pid -> peak RSS
    code_server_cpu: dict[int, float] = field(default_factory=dict)
    most_alive: int = 0
    cpu_at_warm: float | None = None  # all CPU seconds when the warm-up ended
    peak_rss_alive: int = 0  # the code servers' RSS summed over those alive at once

    def take(self, roots: list[int]) -> None:
        procs: list[psutil.Process] = []
        for pid in roots:
            try:
                root = psutil.Process(pid)
                procs += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        alive, rss_alive = 0, 0
        for proc in procs:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    cmdline = proc.cmdline()
                    rss = proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            self.cpu[proc.pid] = times.user + times.system
            if is_code_server(cmdline):
                alive += 1
                rss_alive += rss
                self.code_servers[proc.pid] = max(rss, self.code_servers.get(proc.pid, 0))
                self.code_server_cpu[proc.pid] = times.user + times.system
        self.most_alive = max(self.most_alive, alive)
        self.peak_rss_alive = max(self.peak_rss_alive, rss_alive)


@dataclass
class Result:
    workspace: str
    seconds: float
    warm_up: float
    sample: Sample
    load_before: str
    load_after: str


def _env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
    env.update(
        DAGSTER_HOME=str(base / "dagster"),
        AZAION_ROOT_DIR=str(base / "azaion"),
        RABBITMQ_HOST="127.0.0.1",
        RABBITMQ_PORT=str(free_port()),  # nothing listens: every stream tick skips
        RABBITMQ_PASSWORD="unused",
    )
    return env


def _fresh_home(base: Path) -> None:
    from dagster import DagsterInstance

    (base / "dagster").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", base / "dagster" / "dagster.yaml")
    # Create the SQLite storage before the daemon and a code server race to create it.
    with DagsterInstance.from_config(str(base / "dagster")):
        pass


def measure(kind: str, seconds: float, poll: float, warm_up: float, base: Path) -> Result:
    _fresh_home(base)
    env = _env(base)
    sample = Sample()
    procs = []
    load_before = load_average()
    with open(base / "services.log", "ab") as log:
        if kind == "grpc_server":
            port = 4000
            if not hostservices.port_free("127.0.0.1", port):
                raise SystemExit(f"port {port} is taken: stop whatever listens there first")
            (base / "code").mkdir()
            (base / "svc").mkdir()
            shutil.copy(UNITS / "workspace.yaml", base / "svc" / "workspace.yaml")
            code_argv = hostservices.service_argv(UNITS / hostservices.CODE_SERVER, BIN)
            procs.append(start_in_session(code_argv, base / "code", env, log))
            daemon_argv = hostservices.service_argv(UNITS / hostservices.DAEMON, BIN)
            cwd = base / "svc"
        else:
            daemon_argv = [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]
            cwd = REPO  # the root workspace.yaml, as `make dev` uses it
        procs.append(start_in_session(daemon_argv, cwd, env, log))
        started = time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < seconds:
                sample.take([p.pid for p in procs])
                if sample.cpu_at_warm is None and elapsed >= warm_up:
                    sample.cpu_at_warm = sum(sample.cpu.values())
                time.sleep(poll)
        finally:
            for proc in reversed(procs):
                hostservices.stop(proc, "control-group", timeout=60)
    return Result(kind, elapsed, warm_up, sample, load_before, load_average())


def report(results: list[Result]) -> None:
    mib = 2**20
    print(
        "\n| workspace | seconds | code-server processes started | alive at once (max) "
        "| peak RSS of one | peak RSS alive at once | CPU s, code servers | CPU s, all "
        "| CPU % of one core | CPU s a minute after the first minute | load before | load after |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in results:
        s = r.sample
        one = max(s.code_servers.values(), default=0)
        cpu_all = sum(s.cpu.values())
        steady = (cpu_all - (s.cpu_at_warm or 0)) / (r.seconds - r.warm_up) * 60
        print(
            f"| {r.workspace} | {r.seconds:.0f} | {len(s.code_servers)} | {s.most_alive} "
            f"| {one / mib:.0f} MiB | {s.peak_rss_alive / mib:.0f} MiB "
            f"| {sum(s.code_server_cpu.values()):.1f} | {cpu_all:.1f} "
            f"| {100 * cpu_all / r.seconds:.1f} | {steady:.1f} | {r.load_before} | {r.load_after} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--warm-up", type=float, default=60, help="start-up, left out of the rate")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-churn-", dir=args.workdir) as tmp:
        for kind in ("python_module", "grpc_server"):
            print(f"{kind}: daemon for {args.seconds:.0f} s, load {load_average()}", flush=True)
            result = measure(kind, args.seconds, args.poll, args.warm_up, Path(tmp) / kind)
            results.append(result)
            print(
                f"  {len(result.sample.code_servers)} code-server processes, "
                f"{sum(result.sample.cpu.values()):.1f} CPU s, load {result.load_after}",
                flush=True,
            )
    report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
