"""Benchmark: a compressed year. An instance and a data tree of a year's shape at a stated rate,
then what people and the daemon meet on it: each sensor's tick, the asset pages in Chromium,
forming one more dataset, one housekeeping run, and disk by kind with and without housekeeping.

Run with ``python -m bench.year [--annotations 30000] [--days 365] [--backends sqlite,postgres]``
(``make bench``; about 40 minutes on 2 cores).

1. **Templates, real.** A trickle of the stated rate through a real ``dagster-daemon`` for
   ``--sample-minutes`` (``bench.trickle``) gives the ingest runs and their per-run cost on disk;
   ``azaion-assets demo`` gives a retraining, a release and a monitor run; a housekeeping run on
   the demo's instance gives the last.
2. **The year's instance, filled** (``bench.year_runs``): those runs copied day by day at the
   rhythm, into SQLite (the root ``dagster.yaml``) and PostgreSQL, beside a week's instance
   filled the same way, the baseline of every ratio.
3. **The year's tree** (``bench.year_tree``): annotations at 1/``--scale`` of the rate, a
   dataset formed and a model folder every day, housekeeping's plan carried out every night.
4. **Forming** on a year's worth of annotations at 1/``--forming-scale`` against ``cp -al``.
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
import types
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import DagsterInstance, RunsFilter

from bench.timing import load_average
from bench.year_instance import templates
from bench.year_runs import Rhythm, Templates, fill, retained_ticks, ticks_by_origin
from bench.year_tree import ModelSizes, Rate, YearTree, build, scaled_disk

REPO = Path(__file__).resolve().parents[1]
GOALS = {"tick": 2.0, "page": 5.0, "forming": 1.5}
DEMO_ENV = {
    "TRAINING_MODEL": "yolo26n.yaml",
    "TRAINING_EPOCHS": "30",
    "TRAINING_IMGSZ": "128",
    "TRAINING_BATCH_SIZE": "16",
    "TRAINING_WORKERS": "0",
    "TRAINING_OPTIMIZER": "AdamW",
    "TRAINING_LR0": "0.002",
    "EXPORT_ONNX_IMGSZ": "128",
}


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AZAION_", "DAGSTER_"))}


@contextmanager
def environ(**values: str) -> Iterator[None]:
    """Variables for one step. The settings read the environment over their arguments, so a tree
    named only in ``Settings(azaion_root_dir=...)`` would lose to a step before it."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def azaion_root(root: Path):
    return environ(AZAION_ROOT_DIR=str(root))


@contextmanager
def live_services(work: Path) -> Iterator[None]:
    """What the sensors reach besides the instance, so that no tick stops at a missing setting:
    a broker whose stream holds fresh messages, and release credentials (the release sensor
    only checks they are set; it calls nothing)."""
    from azaion_assets.dev.localbroker import LocalBroker
    from bench.trickle import Publisher

    with LocalBroker(base=work / "tick-broker") as broker:
        target = broker.target("azaion-annotations")
        publisher = Publisher(target, rate=100, size=20_000)
        publisher.start()
        while len(publisher.confirmed) < 200 and publisher.is_alive():
            time.sleep(0.2)
        publisher.stop_event.set()
        publisher.join()
        release = {
            "AZAION_API_EMAIL": "bench@azaion.local",
            "AZAION_API_PASSWORD": "unused",
            "MODEL_ENCRYPTION_KEY": "bench-key-not-a-secret-0123456789",
        }
        with environ(**target.as_env(), **release):
            yield


def sample_trickle(work: Path, rate: float, minutes: float) -> tuple[Path, dict]:
    """A real daemon under a trickle at ``rate`` messages a second: its instance, and the cost
    of one ingest run on disk by kind (SQLite)."""
    from azaion_assets.dev.localbroker import LocalBroker
    from bench.trickle import trickle

    args = types.SimpleNamespace(
        code=REPO, rate=rate, size_kb=100, minutes=minutes, stall_minutes=0, stall_seconds=0
    )
    with LocalBroker(base=work / "broker") as broker:
        phase = trickle(work, broker, args, None)
    home = work / "trickle" / "dagster"
    shards = [p for p in (home / "history" / "runs").glob("*.db") if p.name != "index.db"]
    named = [p for p in shards if len(p.stem) == 36]
    cost = {
        "runs": phase.runs,
        "seconds": phase.seconds,
        "instance_bytes": phase.instance_bytes,
        "shard_bytes": statistics.mean(p.stat().st_size for p in named) if named else 0,
    }
    return home, cost


def demo_instance(work: Path) -> Path:
    """``azaion-assets demo`` into ``work``: a real retraining, promotion, release and score."""
    home, root = work / "demo" / "dagster", work / "demo" / "azaion"
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {
        **_clean_env(),
        **DEMO_ENV,
        "DAGSTER_HOME": str(home),
        "AZAION_ROOT_DIR": str(root),
    }
    log = work / "demo.log"
    with open(log, "w") as out:
        done = subprocess.run(
            [str(REPO / ".venv" / "bin" / "azaion-assets"), "demo", "--fresh"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        sys.exit(f"demo failed; see {log}")
    _housekeeping_run(home, root)
    return home


def _housekeeping_run(home: Path, root: Path) -> None:
    from azaion_assets.defs.housekeeping.housekeeping_job import housekeeping_job
    from azaion_assets.defs.resources import AzaionSettingsResource

    with azaion_root(root), DagsterInstance.from_config(str(home)) as instance:
        housekeeping_job.execute_in_process(
            instance=instance, resources={"azaion_settings": AzaionSettingsResource()}
        )


def load_templates(trickle_home: Path, demo_home: Path) -> Templates:
    trickle = DagsterInstance.from_config(str(trickle_home))
    demo = DagsterInstance.from_config(str(demo_home))

    def one(job: str) -> object:
        found = templates(demo, job, RunsFilter(job_name=job))
        if not found:
            sys.exit(f"the demo made no {job} run to copy")
        return found[-1]

    ingest = templates(trickle, "ingest", RunsFilter(job_name="ingest_job"))
    ingest = ingest[1:] or ingest  # the first run after the warm-up takes what waited
    return Templates(
        ingest=ingest,
        retraining=one("retraining_job"),  # type: ignore[arg-type]
        release=one("model_release_job"),  # type: ignore[arg-type]
        monitor=one("champion_monitor_job"),  # type: ignore[arg-type]
        housekeeping=one("housekeeping_job"),  # type: ignore[arg-type]
        ticks=ticks_by_origin(trickle),
        sources=[trickle, demo],
    )


# --- instances ----------------------------------------------------------------------------------

PG = {
    "hostname": "127.0.0.1",
    "port": 5432,
    "username": "postgres",
    "scheme": "postgresql+psycopg2",
}


def make_instance(backend: str, home: Path, name: str) -> DagsterInstance:
    """A fresh instance: the root ``dagster.yaml`` (SQLite), or it with PostgreSQL storage in a
    new database ``name``."""
    import yaml

    home.mkdir(parents=True)
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    if backend == "postgres":
        _execute("postgres", f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
        config["storage"] = {"postgres": {"postgres_db": {**PG, "password": "", "db_name": name}}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return DagsterInstance.from_config(str(home))


def vacuum(name: str) -> None:
    _execute(name, "VACUUM ANALYZE")


def drop_database(name: str) -> None:
    _execute("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _execute(database: str, *statements: str) -> None:
    """``statements`` on ``database``, each outside a transaction (as CREATE DATABASE and VACUUM
    must be)."""
    import sqlalchemy as db

    engine = db.create_engine(_pg_url(database), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(db.text(statement))
    engine.dispose()


def _pg_url(database: str) -> str:
    return f"postgresql+psycopg2://{PG['username']}@{PG['hostname']}:{PG['port']}/{database}"


def instance_bytes(backend: str, home: Path, name: str) -> dict[str, int]:
    """Bytes by table group (PostgreSQL) or file (SQLite)."""
    if backend == "sqlite":
        files = {
            "runs.db": home / "history" / "runs.db",
            "index.db": home / "history" / "runs" / "index.db",
            "schedules.db": home / "schedules" / "schedules.db",
        }
        return {k: p.stat().st_size for k, p in files.items() if p.exists()}
    import sqlalchemy as db

    engine = db.create_engine(_pg_url(name))
    with engine.connect() as conn:
        rows = conn.execute(
            db.text(
                "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r'"
            )
        ).all()
    engine.dispose()
    return {name: int(size) for name, size in rows}


# --- what people and the daemon meet ----------------------------------------------------------


def sensors() -> dict[str, object]:
    """Every sensor of the code location, built as ``definitions`` builds them (defaults)."""
    from azaion_assets.defs.annotations.annotation_stream_sensor import (
        build_annotation_stream_sensor,
    )
    from azaion_assets.defs.health.health_sensor import build_health_sensor
    from azaion_assets.defs.monitor.champion_monitor_sensor import build_champion_monitor_sensor
    from azaion_assets.defs.release.model_release_sensor import build_model_release_sensor
    from azaion_assets.defs.training.retraining_sensor import build_retraining_sensor
    from azaion_assets.lib.config.settings import Settings

    def interval(name: str) -> int:
        return Settings.model_fields[f"{name}_sensor_interval_seconds"].default

    return {
        "annotation_stream_sensor": build_annotation_stream_sensor(interval("stream")),
        "retraining_sensor": build_retraining_sensor(interval("retrain")),
        "champion_monitor_sensor": build_champion_monitor_sensor(interval("monitor")),
        "model_release_sensor": build_model_release_sensor(interval("release")),
        "health_sensor": build_health_sensor(interval("health")),
    }


def time_ticks(instances: dict[str, DagsterInstance], repeat: int = 3) -> dict:
    """Each sensor's tick on each instance, evaluated as the daemon evaluates it (its context on
    the instance, no cursor: the first tick of a restarted daemon, the one that reads most),
    alternating between instances; median seconds and what the tick decided."""
    from dagster import build_sensor_context

    from azaion_assets.defs.resources import AzaionSettingsResource

    resources = {"azaion_settings": AzaionSettingsResource()}
    out: dict[str, dict[str, list[float]]] = {}
    said: dict[str, str] = {}
    for name, sensor in sensors().items():
        for _ in range(repeat):
            for label, instance in instances.items():
                started = time.perf_counter()
                result = sensor(build_sensor_context(instance=instance, resources=resources))  # type: ignore[operator]
                out.setdefault(name, {}).setdefault(label, []).append(time.perf_counter() - started)
                said[f"{name}/{label}"] = _decision(result)
    medians = {n: {k: statistics.median(v) for k, v in d.items()} for n, d in out.items()}
    return {"seconds": medians, "said": said}


def _decision(result: object) -> str:
    skip = getattr(result, "skip_message", None)
    if skip:
        return f"skip: {skip[:100]}"
    runs = getattr(result, "run_requests", None) or ([result] if result is not None else [])
    return f"{len(runs)} run request(s)"


def time_housekeeping(instance: DagsterInstance, root: Path) -> tuple[float, dict]:
    """One housekeeping run, as the schedule launches it, on the year's instance and tree."""
    from azaion_assets.defs.housekeeping.housekeeping_job import housekeeping_job
    from azaion_assets.defs.resources import AzaionSettingsResource

    with azaion_root(root):
        started = time.perf_counter()
        result = housekeeping_job.execute_in_process(
            instance=instance, resources={"azaion_settings": AzaionSettingsResource()}
        )
        seconds = time.perf_counter() - started
    outputs = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = outputs[0].step_output_data.metadata if outputs else {}
    return seconds, {k: getattr(v, "value", v) for k, v in metadata.items()}


def time_forming(count: int, work: Path) -> dict[str, float]:
    from bench.dataset_forming import run

    with azaion_root(work / "azaion"):
        return run(count, 1, work)


# --- the run ----------------------------------------------------------------------------------


def model_params(architecture: str, work: Path) -> int:
    """Parameters of the production model, built from its architecture YAML (no weights)."""
    from azaion_assets.lib.training.offline import prepare_ultralytics

    prepare_ultralytics(work / "runtime")
    from ultralytics.nn.tasks import DetectionModel

    yaml_file = str(Path(architecture).with_suffix(".yaml"))  # yolo26m.pt: its yolo26m.yaml
    return sum(p.numel() for p in DetectionModel(yaml_file, verbose=False).parameters())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--annotations", type=int, default=30_000, help="a day's annotations")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--scale", type=int, default=1000, help="the tree's annotations 1/N")
    parser.add_argument("--forming-scale", type=int, default=50)
    parser.add_argument("--sample-minutes", type=float, default=5.0)
    parser.add_argument("--templates", type=Path, help="reuse a workdir's trickle/ and demo/")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--keep", action="store_true", help="leave the workdir")
    args = parser.parse_args()
    from azaion_assets.lib.config.settings import Settings

    defaults = {k: f.default for k, f in Settings.model_fields.items()}
    work = Path(tempfile.mkdtemp(prefix="bench-year-", dir=args.workdir))
    print(f"compressed year in {work}; load {load_average()}", flush=True)
    try:
        return _run(args, defaults, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        for backend in args.backends.split(","):
            if backend == "postgres":
                for label in ("week", "year"):
                    drop_database(f"bench_year_{label}_{os.getpid()}")


def _run(args, defaults: dict, work: Path) -> int:
    workday = 10 * 3600
    rate = args.annotations / workday
    source = args.templates or work
    if args.templates is None:
        print(
            f"1. templates: a {args.sample_minutes:g}-minute trickle at {rate:.2f} msg/s, the demo"
        )
        trickle_home, cost = sample_trickle(work, rate, args.sample_minutes)
        (work / "trickle" / "cost.json").write_text(json.dumps(cost))
        demo_home = demo_instance(work)
    else:
        trickle_home, demo_home = source / "trickle" / "dagster", source / "demo" / "dagster"
        cost = json.loads((source / "trickle" / "cost.json").read_text())
    t = load_templates(trickle_home, demo_home)
    runs_per_day = round(len(t.ingest) / _span(t.ingest) * workday) if len(t.ingest) > 1 else 600
    scores = min(  # a score when enough is new, at most one a sensor interval
        args.annotations // defaults["monitor_min_new_validated"],
        workday // defaults["monitor_sensor_interval_seconds"],
    )
    rhythm = Rhythm(annotations=args.annotations, ingest_runs=runs_per_day, monitor_runs=scores)
    print(f"   {len(t.ingest)} ingest runs to copy: {runs_per_day} a working day", flush=True)
    today = datetime.now(UTC).date()

    print("2. the year's tree, day by day", flush=True)
    sizes = ModelSizes(
        params=model_params(defaults["training_model"], work),
        checkpoints=defaults["training_epochs"] // max(1, defaults["training_save_period"]),
    )
    year = YearTree(args.scale, Rate(annotations_per_day=args.annotations), sizes, args.days)
    report_days = {1, 30, 31, 60, 90, 180, args.days}
    tree_root = work / "tree"
    with azaion_root(tree_root):
        tree = build(tree_root, year, report_days, first=today - timedelta(days=args.days))

    results: dict[str, dict] = {}
    for backend in args.backends.split(","):
        print(f"3. {backend}: a week's and a {args.days}-day instance", flush=True)
        instances, fills = {}, {}
        for label, days in (("week", 8), ("year", args.days)):
            name = f"bench_year_{label}_{os.getpid()}"
            home = work / f"{backend}-{label}"
            instance = make_instance(backend, home, name)
            started = time.perf_counter()
            counts = fill(instance, t, rhythm, today, days)
            if label == "year":
                intervals = _tick_intervals(defaults, runs_per_day)
                counts["ticks"] = retained_ticks(instance, t, intervals, today)
            if backend == "postgres":
                vacuum(name)  # as autovacuum keeps a live database: statistics, visibility map
            counts["fill_seconds"] = time.perf_counter() - started
            counts["bytes"] = instance_bytes(backend, home, name)
            instances[label], fills[label] = instance, counts
            print(f"   {label}: {counts['runs']} runs, {counts['fill_seconds']:.0f} s", flush=True)
        with azaion_root(tree_root), live_services(work):
            ticks = time_ticks(instances)
        from bench.year_ui import pages, time_pages

        ui = {}  # on every backend: the docs state the supported range of each
        env = {**_clean_env(), "AZAION_ROOT_DIR": str(tree_root)}
        for label in ("week", "year"):
            folder = work / f"ui-{backend}-{label}"
            folder.mkdir()
            wanted = pages(today, _last_block(instances[label]))
            ui[label] = time_pages(work / f"{backend}-{label}", env, folder, wanted)
        results[backend] = {"fills": fills, "ticks": ticks, "ui": ui}
        if backend == args.backends.split(",")[-1]:
            before = scaled_disk(tree, year)
            seconds, report = time_housekeeping(instances["year"], tree_root)
            results["housekeeping"] = {
                "seconds": seconds,
                "report": report,
                "before": before,
                "after": scaled_disk(tree, year),
                "backend": backend,
            }
        for instance in instances.values():
            instance.dispose()

    print("4. forming on a year's annotations", flush=True)
    forming_count = args.annotations * args.days // args.forming_scale
    forming_work = work / "forming"
    forming_work.mkdir()
    forming = time_forming(forming_count, forming_work)
    from bench.year_report import report

    return report(args, rhythm, cost, year, results, forming, forming_count, GOALS)


def _span(runs) -> float:
    return max(runs[-1].started - runs[0].started, 1.0) * len(runs) / max(len(runs) - 1, 1)


def _tick_intervals(defaults: dict, runs_per_day: int) -> dict[str, int]:
    return {
        "annotation_stream_sensor": defaults["stream_sensor_interval_seconds"],
        "annotation_stream_sensor:requests": runs_per_day,
        "retraining_sensor": defaults["retrain_sensor_interval_seconds"],
        "champion_monitor_sensor": defaults["monitor_sensor_interval_seconds"],
        "model_release_sensor": defaults["release_sensor_interval_seconds"],
        "health_sensor": defaults["health_sensor_interval_seconds"],
    }


def _last_block(instance: DagsterInstance) -> str:
    from azaion_assets.defs.partitions import ANNOTATION_BATCHES

    return instance.get_dynamic_partitions(ANNOTATION_BATCHES)[-1]


if __name__ == "__main__":
    sys.exit(main())
