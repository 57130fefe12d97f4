"""Benchmark: what the pictures cost each asset (issue 27), in bytes of metadata and in time.

Run with ``python -m bench.pictures [--images N] [--width W] [--height H] [--repeat R]``.

A throwaway broker gets N validated annotations of W x H synthetic JPEGs in 12 videos (what a
camera sends; the default is 1280x720), plus 4 messages the ingest quarantines with a box of
class 200 (their images can be shown). ``ingest_job`` carries them into a data tree, through a
SQLite instance, as the code location defines it; ``retraining_job`` then runs for two days, so
the second day's model is judged against a champion, and a second batch (winter frames of new
videos) gives ``champion_monitor`` new data to score.

Then each asset is materialised again, alternately with the pictures on (the defaults, drawn
every time: ``PICTURES_EVERY_MINUTES=0``) and off (``PICTURES_BUDGET_BYTES=0``, which draws
nothing), R times each: ``champion_monitor``, ``daily_arrivals`` for the day, ``onnx_model``
(export, parity, both models scored on the test split) and ``dataset``. ``model`` is trained
twice each way, afresh (training dominates it; its picture is one chart). The time is the
asset's step, from its start to its success in the event log; the ratio is the median with
pictures over the median without, measured in the same run. The bytes are the picture entries
of one materialisation (the Markdown, data URIs included), what the instance keeps of it for a
year (docs/housekeeping.md). The fixed part (the charts and at most PICTURES_GALLERY_SIZE frames)
does not grow with the split, so the ratio falls as the test split grows; production test splits
are hundreds to thousands of frames.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from dagster import AssetKey, DagsterEventType, DagsterInstance, materialize

from azaion_assets.defs.annotations.ingest_job import INGEST_JOB
from azaion_assets.defs.location import build_definitions
from azaion_assets.defs.monitor.champion_monitor import MONITOR_JOB
from azaion_assets.defs.partitions import ANNOTATION_BATCHES
from azaion_assets.defs.training.retraining_job import RETRAINING_JOB
from azaion_assets.dev.localbroker import LocalBroker
from azaion_assets.dev.messages import Author, annotation, synthetic
from azaion_assets.dev.synthetic import samples
from azaion_assets.lib.stream.client import probe_tail, publish
from azaion_assets.lib.stream.events import Role
from azaion_assets.lib.stream.offsets import OffsetRange
from bench.timing import load_average

PICTURE_ENTRIES = ("pictures", "training_curves", "worst_frames")
PROFILE = {  # the tests' tiny CPU profile: the model is small, the frames are full size
    "TRAINING_MODEL": "yolo26n.yaml",
    "TRAINING_EPOCHS": "2",
    "TRAINING_IMGSZ": "128",
    "TRAINING_BATCH_SIZE": "16",
    "TRAINING_WORKERS": "0",
    "EXPORT_ONNX_IMGSZ": "128",
    "EXPORT_PARITY_IMAGES": "4",
    "RETRAIN_MIN_TEST_MAP50_95": "0",
    "PICTURES_EVERY_MINUTES": "0",  # every materialisation draws: what drawing costs
}


def _days() -> tuple[str, str]:
    """Yesterday and today (UTC): the second day's model meets the first as its champion."""
    now = time.time()
    yesterday, today = (time.strftime("%Y-%m-%d", time.gmtime(now - d * 86400)) for d in (1, 0))
    return yesterday, today


VALIDATOR = Author(Role.VALIDATOR, "validator@azaion.local")


def _ingest(instance: DagsterInstance, defs, target, batch: list) -> None:
    before = asyncio.run(probe_tail(target))
    first = 0 if before is None else before + 1
    asyncio.run(publish(target, batch))
    tail = asyncio.run(probe_tail(target))
    assert tail is not None
    key = OffsetRange(first, tail).key
    instance.add_dynamic_partitions(ANNOTATION_BATCHES, [key])
    job = defs.resolve_job_def(INGEST_JOB)
    assert job.execute_in_process(instance=instance, partition_key=key).success


def _quarantined(count: int, width: int, height: int) -> list:
    odd = samples(count, seed=99, width=width, height=height, prefix="odd")
    box = (200, 0.5, 0.5, 0.2, 0.2)
    return [annotation(s.name, s.image, ".jpg", [box], VALIDATOR) for s in odd]


def _step_seconds(instance: DagsterInstance, run_id: str, step: str) -> float:
    """The asset's step, from its start to its success, as the event log has it."""
    kinds = (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS)
    times = {
        entry.dagster_event_type: entry.timestamp
        for entry in instance.all_logs(run_id, of_type=set(kinds))
        if entry.step_key == step
    }
    return times[DagsterEventType.STEP_SUCCESS] - times[DagsterEventType.STEP_START]


def _picture_bytes(instance: DagsterInstance, asset: str) -> int:
    event = instance.get_latest_materialization_event(AssetKey(asset))
    assert event is not None and event.asset_materialization is not None
    meta = event.asset_materialization.metadata
    return sum(len(str(meta[k].value).encode()) for k in PICTURE_ENTRIES if k in meta)


def _measure(instance, defs, asset: str, partition: str | None, repeat: int, before=None) -> dict:
    """Pictures on and off in turn (ABBA): the step's median seconds each way, and the bytes.
    ``before`` runs ahead of each materialisation (a training must start afresh)."""
    seconds: dict[bool, list[float]] = {True: [], False: []}
    size = 0
    for i in range(repeat):
        for on in (True, False) if i % 2 == 0 else (False, True):
            os.environ["PICTURES_BUDGET_BYTES"] = "1000000" if on else "0"
            if before is not None:
                before()
            result = materialize(
                [defs.resolve_assets_def(asset)], instance=instance, partition_key=partition
            )
            assert result.success, asset
            assert result.get_asset_materialization_events(), f"{asset} materialised nothing"
            seconds[on].append(_step_seconds(instance, result.run_id, asset))
            if on:
                size = _picture_bytes(instance, asset)
    os.environ.pop("PICTURES_BUDGET_BYTES")
    with_, without = (statistics.median(seconds[on]) for on in (True, False))
    return {"asset": asset, "without": without, "with": with_, "bytes": size}


def main() -> int:
    parser = argparse.ArgumentParser(description="What the pictures cost each asset.")
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average at the start: {load_average()}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-pictures-") as tmp:
        work = Path(tmp)
        (work / "dagster").mkdir()
        (work / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        with LocalBroker(base=work / "broker") as broker:
            target = broker.target("bench-pictures")
            os.environ.update(
                {
                    **PROFILE,
                    **target.as_env(),
                    "AZAION_ROOT_DIR": str(work / "azaion"),
                    "AZAION_RUNTIME_DIR": str(work / "runtime"),
                }
            )
            days = _days()
            os.environ["DAILY_PARTITIONS_START"] = days[0]
            size = {"width": args.width, "height": args.height}
            defs = build_definitions()
            with DagsterInstance.from_config(str(work / "dagster")) as instance:
                batch = list(synthetic(args.images, VALIDATOR, 1, "cam", videos=12, **size))
                _ingest(instance, defs, target, batch + _quarantined(4, **size))
                for day in days:
                    job = defs.resolve_job_def(RETRAINING_JOB)
                    assert job.execute_in_process(instance=instance, partition_key=day).success
                winter = synthetic(
                    args.images // 4, VALIDATOR, 2, "snow", videos=3, scene="winter", **size
                )
                _ingest(instance, defs, target, list(winter))
                monitor = defs.resolve_job_def(MONITOR_JOB)
                assert monitor.execute_in_process(instance=instance).success
                print(f"set up in {time.monotonic() - started:.0f} s; load {load_average()}")
                model_dir = work / "azaion" / "models" / f"azaion-{days[1]}"

                def afresh() -> None:  # a finished training re-run would only resume it
                    shutil.rmtree(model_dir)

                # The monitor first: a dataset formed again would hold its new data.
                rows = [
                    _measure(instance, defs, "champion_monitor", None, args.repeat),
                    _measure(instance, defs, "daily_arrivals", days[1], args.repeat),
                    _measure(instance, defs, "onnx_model", days[1], args.repeat),
                    _measure(instance, defs, "model", days[1], 2, before=afresh),
                    _measure(instance, defs, "dataset", days[1], args.repeat),
                ]
    print(f"\n{args.images} annotations of {args.width}x{args.height}, medians of {args.repeat}")
    print(f"{'asset':<18}{'without s':>10}{'with s':>9}{'ratio':>8}{'extra s':>9}{'bytes':>10}")
    for r in rows:
        ratio = r["with"] / r["without"] if r["without"] else float("nan")
        print(
            f"{r['asset']:<18}{r['without']:>10.2f}{r['with']:>9.2f}{ratio:>7.2f}x"
            f"{r['with'] - r['without']:>9.2f}{r['bytes']:>10,}"
        )
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
