"""Benchmark: the production rhythm, a steady trickle of annotations through ``dagster-daemon``.

Run with ``python -m bench.trickle [--rate 2] [--minutes 10] [--stall cpu|broker|none]``.

Annotators label all working day, so the stream is a trickle, not a burst. Three phases, each on
a fresh Dagster instance (the root ``dagster.yaml``, SQLite) and a real ``dagster-daemon`` on the
project's workspace with the shipped defaults (only retraining is held off, and the sensor
interval is the default 5 s):

1. idle (the baseline): the daemon runs ``--minutes`` with an empty stream;
2. trickle: a publisher sends ``--rate`` Created messages of about ``--size-kb`` KB a second
   for ``--minutes``, one at a time, each timed from the broker's confirm until a
   materialisation of ``annotations`` has applied it (the materialisations' cumulative message
   counts, in stream order);
3. stall (``--stall``): the trickle goes on while two processes hold both cores (a training) or
   the broker is down, for ``--stall-seconds``; the most ingest runs ever queued at once, and
   how long after the stall's end every message published before it had landed.

Each phase is measured over a window that opens ``WARMUP`` seconds after the daemon's start (its
code server loaded, every sensor ticked) and closes when the publisher stops: CPU of the daemon
and all its children (code server, run workers, stream readers), user + system, including the
children that ended meanwhile, as a fraction of one core; the instance's growth on disk, per
hour. The load average is printed beside each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from azaion_assets.dev.localbroker import LocalBroker
from azaion_assets.dev.localdaemon import local_daemon
from azaion_assets.lib.stream.stream_connection import StreamTarget
from bench.stream_ingest import messages, noisy_jpeg
from bench.timing import load_average

REPO = Path(__file__).resolve().parents[1]
GOALS = {"runs": 12, "partitions": 3, "cpu": 0.1}  # at 2 msg/s for 10 minutes
INGEST = {"azaion/stage": "ingest"}


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    cpu: float = 0.0  # CPU-seconds of the daemon's process tree
    runs: int = 0
    partitions: int = 0
    messages: int = 0
    latencies: list[float] = field(default_factory=list)
    instance_bytes: int = 0  # the instance's growth over the window
    max_queued: int = 0
    recovery: float | None = None
    ticks: dict[str, float] = field(default_factory=dict)  # sensor -> seconds in its ticks

    @property
    def cores(self) -> float:
        return self.cpu / self.seconds if self.seconds else 0.0


WARMUP = 30.0  # seconds after the daemon's start before a phase's window opens


def _tree_cpu(pid: int) -> float:
    """CPU-seconds of a process tree so far: each live process's own time and that of its
    children it has reaped (so a run worker that ended is counted once, in its parent's)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue  # ended just now: its parent's reaped time will hold it
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class Window:
    """The measured part of a phase: CPU of the daemon's tree, wall time and instance growth
    between ``open`` and ``close``, after the daemon's start-up."""

    def __init__(self, pid: int, home: Path, phase: Phase) -> None:
        self.pid, self.home, self.phase = pid, home, phase

    def open(self) -> None:
        self.cpu, self.at, self.bytes = _tree_cpu(self.pid), time.monotonic(), _bytes(self.home)

    def close(self) -> None:
        self.phase.cpu = _tree_cpu(self.pid) - self.cpu
        self.phase.seconds = time.monotonic() - self.at
        self.phase.instance_bytes = _bytes(self.home) - self.bytes


def _env(home: Path, root: Path, target: StreamTarget | None, code: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "AZAION_ROOT_DIR": str(root),
        "DAGSTER_HOME": str(home),
        "RETRAIN_MIN_NEW_VALIDATED": "100000000",  # no training in this benchmark
        "PYTHONPATH": str(code),
    }
    return {**env, **target.as_env()} if target else env


@contextmanager
def daemon(
    workdir: Path, name: str, target: StreamTarget, code: Path = REPO
) -> Iterator[tuple[object, Window]]:
    """A fresh instance and ``dagster-daemon run`` on the project at ``code`` (its instance
    config and workspace), past its start-up (``WARMUP``); yields the instance and the phase's
    window, to open and close around what is measured."""
    from dagster import DagsterInstance

    home = workdir / name / "dagster"
    home.mkdir(parents=True)
    shutil.copy(code / "dagster.yaml", home / "dagster.yaml")
    env = _env(home, workdir / name / "azaion", target, code)
    with DagsterInstance.from_config(str(home)) as instance:  # storage made before the race
        phase = Phase(name)
        log = workdir / name / "daemon.log"
        with local_daemon(code / "workspace.yaml", code, env, log) as proc:
            time.sleep(WARMUP)
            yield instance, Window(proc.pid, home, phase)
        _count(instance, phase)


def _count(instance, phase: Phase) -> None:
    from dagster import AssetKey, RunsFilter

    from azaion_assets.defs.partitions import ANNOTATION_BATCHES

    phase.runs = len(instance.get_run_ids(RunsFilter(tags=INGEST)))
    phase.partitions = len(instance.get_dynamic_partitions(ANNOTATION_BATCHES))
    records = instance.fetch_materializations(AssetKey("annotations"), limit=10_000).records
    phase.messages = sum(_value(r, "messages") for r in records)
    for state in instance.all_instigator_state():
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=10_000)
        busy = sum((t.end_timestamp or t.timestamp) - t.timestamp for t in ticks)
        phase.ticks[state.instigator_name] = busy


def _value(record, key: str) -> int:
    materialization = record.asset_materialization
    value = materialization.metadata.get(key) if materialization else None
    return int(getattr(value, "value", 0) or 0)


class Landing:
    """When each message landed: polls the new ``annotations`` materialisations and counts the
    messages they applied, in stream order (one ingest run at a time)."""

    def __init__(self, instance) -> None:
        self.instance, self.after, self.landed = instance, 0, 0
        self.at: list[float] = []  # landing time of message i (epoch seconds)

    def poll(self) -> None:
        from dagster import AssetKey, AssetRecordsFilter

        records = self.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("annotations"), after_storage_id=self.after),
            limit=1000,
            ascending=True,
        ).records
        for record in records:
            self.after = record.storage_id
            count = _value(record, "messages") if not _reused(record) else 0
            self.at += [record.timestamp] * count

    def queued(self) -> int:
        from dagster import DagsterRunStatus, RunsFilter

        runs = RunsFilter(tags=INGEST, statuses=[DagsterRunStatus.QUEUED])
        return len(self.instance.get_run_ids(runs))


def _reused(record) -> bool:
    materialization = record.asset_materialization
    value = materialization.metadata.get("reused_earlier_run") if materialization else None
    return bool(getattr(value, "value", False))


class Publisher(threading.Thread):
    """One Created message every 1/``rate`` seconds over one producer connection, each timed at
    its confirm (epoch seconds); ``pause`` holds it (the broker is down)."""

    def __init__(self, target: StreamTarget, rate: float, size: int) -> None:
        super().__init__(daemon=True)
        self.target, self.period = target, 1.0 / rate
        rng = random.Random(0)
        self.images = [noisy_jpeg(rng, size) for _ in range(8)]
        self.confirmed: list[float] = []
        self.stop_event, self.paused = threading.Event(), threading.Event()

    def run(self) -> None:
        asyncio.run(self._publish())

    async def _publish(self) -> None:
        from rstream import AMQPMessage, Producer

        async def producer() -> Producer:
            made = Producer(self.target.host, **self.target._client_kwargs())
            await made.start()
            await made.create_stream(self.target.stream, exists_ok=True)
            return made

        sender = await producer()
        next_at, i = time.monotonic(), 0
        while not self.stop_event.is_set():
            if self.paused.is_set():
                await asyncio.sleep(0.2)
                continue
            (body, props) = next(iter(messages(i, 1, self.images)))
            message = AMQPMessage(body=body, application_properties=dict(props))  # type: ignore[arg-type]
            try:
                await sender.send_wait(self.target.stream, message)
            except Exception:  # the broker went away: wait for it, reconnect, send again
                await asyncio.sleep(1)
                with suppress(Exception):
                    sender = await producer()
                continue
            self.confirmed.append(time.time())
            i += 1
            next_at += self.period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await sender.close()


def _hog(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def trickle(workdir: Path, broker: LocalBroker, args, stall: str | None) -> Phase:
    name = (f"stall-{stall}" if stall else "trickle") + (
        f"-{args.code.name}" if args.code != REPO else ""
    )
    target = broker.target(f"bench-{name}")
    with daemon(workdir, name, target, args.code) as (instance, window):
        phase = window.phase
        landing = Landing(instance)
        publisher = Publisher(target, args.rate, args.size_kb * 1000)
        window.open()
        publisher.start()
        started = time.monotonic()
        minutes = args.stall_minutes if stall else args.minutes
        stall_at = started + 60 if stall else None  # a minute of steady trickle first
        stall_end: float | None = None
        while time.monotonic() - started < minutes * 60:
            time.sleep(0.5)
            landing.poll()
            phase.max_queued = max(phase.max_queued, landing.queued())
            if stall and stall_at and time.monotonic() >= stall_at:
                print(f"  stall ({stall}) for {args.stall_seconds}s  load {load_average()}")
                stall_end = _stall(stall, broker, publisher, args.stall_seconds, landing, phase)
                stall_at = None
        window.close()
        publisher.stop_event.set()
        publisher.join(30)
        _drain(landing, len(publisher.confirmed))
        phase.latencies = [a - c for c, a in zip(publisher.confirmed, landing.at, strict=False)]
        if stall_end is not None:
            before = [
                a for c, a in zip(publisher.confirmed, landing.at, strict=False) if c < stall_end
            ]
            phase.recovery = max(before) - stall_end if before else None
        print(f"  {name}: {len(publisher.confirmed)} published  load {load_average()}", flush=True)
    return phase


def _stall(
    kind: str, broker: LocalBroker, publisher: Publisher, seconds: float, landing: Landing, phase
) -> float:
    """Hold the machine for ``seconds``: both cores busy, or the broker down (annotators'
    messages wait on the platform meanwhile). Returns when it ended (epoch seconds)."""
    end = time.monotonic() + seconds

    def watch() -> None:
        while time.monotonic() < end:
            time.sleep(0.5)
            landing.poll()
            phase.max_queued = max(phase.max_queued, landing.queued())

    if kind == "cpu":
        hogs = [multiprocessing.Process(target=_hog, args=(seconds,)) for _ in range(2)]
        for hog in hogs:
            hog.start()
        watch()
        for hog in hogs:
            hog.join()
    else:
        publisher.paused.set()
        broker.stop()
        watch()
        broker.start()
        publisher.paused.clear()
    return time.time()


def _drain(landing: Landing, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while len(landing.at) < count and time.monotonic() < deadline:
        time.sleep(0.5)
        landing.poll()
    if len(landing.at) < count:
        print(f"  only {len(landing.at)} of {count} messages landed", file=sys.stderr)


def idle(workdir: Path, broker: LocalBroker, minutes: float) -> Phase:
    target = broker.target("bench-idle")
    with daemon(workdir, "idle", target) as (_instance, window):
        window.open()
        time.sleep(minutes * 60)
        window.close()
        print(f"  idle: done  load {load_average()}", flush=True)
    return window.phase


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(phases: list[Phase], base: Phase, delay: int, rate: float, minutes: float) -> bool:
    print()
    print(f"rate {rate} msg/s, {minutes:g} min a phase, STREAM_MAX_DELAY_SECONDS {delay}")
    print("| phase | runs | partitions | msgs/partition | CPU (cores) | above idle | "
          "p50 landed | p95 landed | instance MB/h | max queued | recovery |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in [base, *phases]:
        per = p.messages / p.partitions if p.partitions else 0
        above = p.cores - base.cores if p is not base else 0.0
        mbh = p.instance_bytes / 1e6 / (p.seconds / 3600)
        recovery = f"{p.recovery:.0f} s" if p.recovery is not None else "-"
        print(
            f"| {p.name} | {p.runs} | {p.partitions} | {per:.0f} | {p.cores:.3f} | {above:+.3f} | "
            f"{_pct(p.latencies, 0.5):.1f} s | {_pct(p.latencies, 0.95):.1f} s | {mbh:.2f} | "
            f"{p.max_queued} | {recovery} |"
        )
    print(f"idle daemon, seconds in each sensor's ticks over {base.seconds:.0f} s:")
    for sensor, busy in sorted(base.ticks.items(), key=lambda kv: -kv[1]):
        print(f"  {sensor:<32} {busy:7.1f} s  ({busy / base.seconds:.3f} of the wall time)")
    steady = phases[0]
    ok = (
        steady.runs <= GOALS["runs"] * minutes / 10
        and steady.partitions <= GOALS["partitions"]
        and steady.cores - base.cores <= GOALS["cpu"]
        and _pct(steady.latencies, 0.95) <= delay + 10
        and all(p.max_queued <= 1 for p in phases)
    )
    print(f"goals (runs <= {GOALS['runs']} per 10 min, partitions <= {GOALS['partitions']}, "
          f"CPU above idle <= {GOALS['cpu']} core, p95 <= {delay + 10} s, never more than one "
          f"ingest run queued): {'met' if ok else 'MISSED'}")  # fmt: skip
    print(f"load average at the end: {load_average()}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=2.0, help="messages a second")
    parser.add_argument("--minutes", type=float, default=10.0, help="idle and trickle phases")
    parser.add_argument("--size-kb", type=int, default=100)
    parser.add_argument("--stall", choices=("cpu", "broker", "none"), default="cpu")
    parser.add_argument("--stall-seconds", type=float, default=60.0)
    parser.add_argument("--stall-minutes", type=float, default=4.0, help="the stall phase")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument(
        "--code",
        type=Path,
        default=REPO,
        help="the trickle phases run this checkout of the project (e.g. a worktree of an older "
        "commit, for a before/after on the same machine); the idle baseline runs this one",
    )
    args = parser.parse_args()
    from azaion_assets.lib.config.settings import Settings

    delay = Settings.model_fields["stream_max_delay_seconds"].default
    workdir = Path(tempfile.mkdtemp(prefix="bench-trickle-", dir=args.workdir))
    print(f"trickle benchmark in {workdir}  load {load_average()}", flush=True)
    try:
        with LocalBroker(base=workdir / "broker") as broker:
            phases: list[Callable[[], Phase]] = [lambda: trickle(workdir, broker, args, None)]
            if args.stall != "none":
                phases.append(lambda: trickle(workdir, broker, args, args.stall))
            base = idle(workdir, broker, args.minutes)
            done = [run() for run in phases]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if report(done, base, delay, args.rate, args.minutes) else 1


if __name__ == "__main__":
    sys.exit(main())
