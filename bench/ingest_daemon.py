"""Benchmark: a stream backlog carried into the data tree through ``dagster-daemon``, as users
meet it, against a raw consume of the same range; and publish-to-materialised latency.

Run with ``python -m bench.ingest_daemon [--count N] [--size-kb K] [--latency R]``.

1. A throwaway broker (``LocalBroker``) gets N valid Created messages of about K KB (the
   messages of ``bench.stream_ingest``).
2. Raw: stock rstream consumes the range in a fresh process (the baseline), before the daemon
   starts and again after it stops; the ratio uses their mean.
3. Backlog: a fresh Dagster instance (the root ``dagster.yaml``: queued runs, one ingest at a
   time) and ``dagster-daemon run`` on the project's workspace (it spawns the code server, as
   ``make dev`` does), or with ``--code-server`` on a standalone code server already serving (the
   shipped host services, deploy/systemd); default settings except the sensor interval. Timed
   from the daemon's start until every partition up to the tail is materialised; also from the
   first ingest run's creation (a backlog that arrives while the daemon runs).
4. Where the time went, per run, from the run records and their event logs: the queue (created
   to dequeued), the launch (dequeued to the run worker's start), the step, and the rest.
5. Latency: R times, at a random moment of the sensor's cycle, 10 messages are published and
   timed until a materialised partition covers them (from the broker's confirm). Fewer than a
   batch wait ``STREAM_MAX_DELAY_SECONDS`` by design (``--delay``, default the shipped 60 s;
   ``bench/trickle.py`` measures the rhythm that delay is for).

The load average is printed beside each figure: other work on the two cores moves them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from azaion_assets.dev.instance_runs import ingested_through
from azaion_assets.dev.localbroker import LocalBroker, free_port
from azaion_assets.dev.localdaemon import local_daemon, start_in_session
from azaion_assets.lib.stream.client import probe_tail, publish
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets.lib.stream.stream_connection import StreamTarget
from bench.stream_ingest import RAW, fill, messages, noisy_jpeg, spawn
from bench.timing import load_average

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GOAL_RATIO = 0.5  # backlog msgs/s through the daemon over raw msgs/s, at least
GOAL_LATENCY = 3.0  # seconds over the delay and the sensor interval, at most
SMALL_BATCH = 10


def _env(workdir: Path, target: StreamTarget, interval: int, delay: int) -> dict[str, str]:
    return {
        **os.environ,
        **target.as_env(),
        "AZAION_ROOT_DIR": str(workdir / "azaion"),
        "DAGSTER_HOME": str(workdir / "dagster"),
        "STREAM_SENSOR_INTERVAL_SECONDS": str(interval),
        "STREAM_MAX_DELAY_SECONDS": str(delay),
        "RETRAIN_MIN_NEW_VALIDATED": "100000000",  # no training in this benchmark
        "PYTHONPATH": str(REPO),
    }


@contextmanager
def daemon(workdir: Path, env: dict[str, str], code_server: bool) -> Iterator[tuple[float, float]]:
    """``dagster-daemon run`` on a fresh instance: on the project's workspace (the daemon
    spawns the code server, as ``make dev`` does), or with ``code_server`` on a standalone code
    server that is already serving (the shipped host services, deploy/systemd). Yields when the
    daemon was started (``perf_counter`` and epoch seconds)."""
    home = workdir / "dagster"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    subprocess.run(  # create the storage once, before the daemon and its code server race
        [sys.executable, "-c", "from dagster import DagsterInstance; DagsterInstance.get()"],
        env=env,
        check=True,
    )
    if not code_server:
        at = time.perf_counter(), time.time()
        with local_daemon(REPO / "workspace.yaml", REPO, env, workdir / "daemon.log"):
            yield at
        return
    from azaion_assets.cli.code_server_command import wait_serving
    from azaion_assets.dev import hostservices

    port = free_port()
    workspace = workdir / "workspace.yaml"
    grpc = {"host": "127.0.0.1", "port": port, "location_name": "azaion_assets"}
    workspace.write_text(json.dumps({"load_from": [{"grpc_server": grpc}]}))
    argv = [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(port)]
    argv += ["-m", "azaion_assets.definitions", "--location-name", "azaion_assets"]
    with open(workdir / "code-server.log", "w") as log:
        server = start_in_session(argv, REPO, env, log)
        try:
            if not wait_serving("127.0.0.1", port, 120):
                raise RuntimeError(f"the code server did not serve; see {log.name}")
            print(f"code server serving on port {port}  load {load_average()}", flush=True)
            at = time.perf_counter(), time.time()
            with local_daemon(workspace, workdir, env, workdir / "daemon.log"):
                yield at
        finally:
            hostservices.stop(server)


def wait_until_covered(instance, tail: int, timeout: float, poll: float = 0.1) -> float:
    deadline = time.perf_counter() + timeout
    while ingested_through(instance, tail) is None:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"offset {tail} not materialised within {timeout:.0f}s")
        time.sleep(poll)
    return time.perf_counter()


def run_phases(
    instance, limit: int | None = None, quiet: bool = False
) -> tuple[list[dict[str, float]], float | None]:
    """Per ingest run (the newest ``limit``): seconds in the queue, launching, in the step, and
    the rest; and when the first one was created (epoch seconds)."""
    from dagster import DagsterEventType as E
    from dagster import RunsFilter

    phases = []
    records = instance.get_run_records(RunsFilter(tags={"azaion/stage": "ingest"}), limit=limit)
    wanted = (E.RUN_STARTING, E.RUN_START, E.STEP_START, E.STEP_SUCCESS, E.RUN_SUCCESS)
    for record in records:
        at: dict[str, float] = {}
        for entry in instance.all_logs(record.dagster_run.run_id):
            kind = entry.dagster_event.event_type if entry.dagster_event else None
            if kind is not None and kind in wanted:
                at.setdefault(kind.name, entry.timestamp)
        created = record.create_timestamp.timestamp()
        if len(at) < len(wanted):
            if not quiet:
                missing = [k.name for k in wanted if k.name not in at]
                print(f"  run {record.dagster_run.run_id}: no {missing}", file=sys.stderr)
            continue
        phases.append(
            {
                "partitions": _partitions(dict(record.dagster_run.tags)),
                "queue": at["RUN_STARTING"] - created,
                "launch": at["RUN_START"] - at["RUN_STARTING"],
                "to step": at["STEP_START"] - at["RUN_START"],
                "step": at["STEP_SUCCESS"] - at["STEP_START"],
                "end": at["RUN_SUCCESS"] - at["STEP_SUCCESS"],
                "created": created,
            }
        )
    first = min((r.create_timestamp.timestamp() for r in records), default=None)
    return phases, first


def _partitions(tags: dict[str, str]) -> int:
    start = tags.get("dagster/asset_partition_range_start")
    if start is None:
        return 1
    first, last = (
        OffsetRange.parse(start),
        OffsetRange.parse(tags["dagster/asset_partition_range_end"]),
    )
    return max(1, round((last.last - first.first + 1) / max(1, len(first))))


PHASES = ("queue", "launch", "to step", "step", "end")


def print_phases(phases: list[dict[str, float]]) -> None:
    names = PHASES
    totals = defaultdict(float)
    for p in phases:
        for name in names:
            totals[name] += p[name]
    wall = sum(totals.values())
    print(f"  {len(phases)} ingest runs, {sum(p['partitions'] for p in phases)} partitions")
    for name in names:
        share = totals[name] / wall if wall else 0
        print(f"    {name:<8} {totals[name]:7.2f}s in all ({share:4.0%})")


def latency(instance, target: StreamTarget, interval: int, repeat: int) -> list[float]:
    rng = random.Random(1)
    images = [noisy_jpeg(rng, 100_000)]
    figures = []
    for i in range(repeat):
        time.sleep(rng.uniform(0, interval))  # a random phase of the sensor's cycle
        batch = list(messages(10_000_000 + i * SMALL_BATCH, SMALL_BATCH, images, seed=i))
        asyncio.run(publish(target, batch))
        confirmed, epoch = time.perf_counter(), time.time()
        tail = asyncio.run(probe_tail(target))
        assert tail is not None
        seconds = wait_until_covered(instance, tail, timeout=120, poll=0.05) - confirmed
        figures.append(seconds)
        runs: list[dict[str, float]] = []
        for _ in range(50):  # the run ends a moment after its materialisation
            if runs := run_phases(instance, limit=1, quiet=True)[0]:
                break
            time.sleep(0.1)
        steps = "  ".join(f"{k} {runs[0][k]:.2f}" for k in PHASES) if runs else "?"
        tick = f"{runs[0]['created'] - epoch:.2f}" if runs else "?"
        print(
            f"  {SMALL_BATCH} messages materialised {seconds:5.2f}s after the confirm: "
            f"sensor {tick}  {steps}  load {load_average()}",
            flush=True,
        )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--size-kb", type=int, default=100)
    parser.add_argument("--latency", type=int, default=3)
    parser.add_argument("--delay", type=int, default=60, help="STREAM_MAX_DELAY_SECONDS")
    parser.add_argument("--interval", type=int, default=5, help="the stream sensor's interval")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument(
        "--code-server",
        action="store_true",
        help="a standalone code server, already serving when the daemon starts (deploy/systemd)",
    )
    args = parser.parse_args()
    from dagster import DagsterInstance

    workdir = Path(tempfile.mkdtemp(prefix="bench-daemon-", dir=args.workdir))
    try:
        with LocalBroker(base=workdir / "broker") as broker:
            target = broker.target("bench-daemon")
            whole, _ = fill(target, args.count, args.size_kb * 1000)
            raws = [spawn(RAW, whole, target, workdir)]
            print(f"raw consume {raws[0]['seconds']:.2f}s  load {load_average()}", flush=True)
            env = _env(workdir, target, args.interval, args.delay)
            with daemon(workdir, env, args.code_server) as (started, epoch_started):
                os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
                with DagsterInstance.get() as instance:
                    done = wait_until_covered(instance, whole.last, timeout=3600)
                    backlog = done - started
                    epoch_done = time.time()
                    print(f"backlog through the daemon {backlog:.2f}s  load {load_average()}")
                    phases, first_run = run_phases(instance)
                    print_phases(phases)
                    figures = latency(instance, target, args.interval, args.latency)
            raws.append(spawn(RAW, whole, target, workdir))
            print(f"raw consume {raws[1]['seconds']:.2f}s  load {load_average()}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    raw = statistics.mean(r["seconds"] for r in raws)
    from_run = epoch_done - first_run if first_run else float("nan")
    print()
    print("| case | seconds | msgs/s | ratio to raw |")
    print("|---|---:|---:|---:|")
    print(
        f"| raw consume (stock rstream, mean of 2) | {raw:.2f} | {args.count / raw:,.0f} | 1.00x |"
    )
    for name, secs in (
        ("backlog, from the daemon's start", backlog),
        ("backlog, from the first run's creation", from_run),
    ):
        print(f"| {name} | {secs:.2f} | {args.count / secs:,.0f} | **{raw / secs:.2f}x** |")
    print(f"daemon up to first run: {first_run - epoch_started:.2f}s" if first_run else "")
    print(
        f"latency, {SMALL_BATCH} messages, delay {args.delay}s, sensor interval {args.interval}s: "
        "median "
        f"{statistics.median(figures):.2f}s, worst {max(figures):.2f}s "
        f"(goal: at most {args.delay + args.interval + GOAL_LATENCY:.0f}s)"
    )
    print(f"load average at the end: {load_average()}")
    bound = args.delay + args.interval + GOAL_LATENCY
    ok = raw / backlog >= GOAL_RATIO and max(figures) <= bound
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
