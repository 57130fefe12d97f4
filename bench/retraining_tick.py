"""Benchmark: one ``retraining_sensor`` tick, counting distinct changed names.

Run with ``python -m bench.retraining_tick [--partitions N] [--names K] [--repeat R]``.

What the daemon pays every ``RETRAIN_SENSOR_INTERVAL_SECONDS``: the sensor evaluated as the
daemon evaluates it (``build_sensor_context`` on a real SQLite instance; the daemon adds a
constant gRPC hop), with N ``annotations`` partitions since the newest dataset, each naming K
validated names (a busy week at 5 s ticks, by default). The baseline is the same tick on
partitions recorded with counts only, as before the names were kept: the ratio is what the
names cost. Both instances live side by side and are timed alternately.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from dagster import AssetMaterialization, DagsterInstance, MetadataValue, build_sensor_context

from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.defs.training.retraining_sensor import build_retraining_sensor
from bench.timing import load_average, median_seconds

SENSOR_RESOURCES = {"azaion_settings": AzaionSettingsResource()}


def _fill(instance: DagsterInstance, partitions: int, names: int, with_names: bool) -> None:
    instance.report_runless_asset_event(AssetMaterialization("dataset", partition="2026-12-01"))
    for p in range(partitions):
        batch = [f"frame_{p:06d}_{i:04d}" for i in range(names)]
        metadata: dict = {"validated": names}
        if with_names:
            metadata["validated_names"] = MetadataValue.json(batch)
            metadata["left_data_names"] = MetadataValue.json(batch[:2])  # deletions, too
        key = f"{p * 1000:012d}-{p * 1000 + 999:012d}"
        instance.report_runless_asset_event(
            AssetMaterialization("annotations", partition=key, metadata=metadata)
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--partitions", type=int, default=2000)
    parser.add_argument("--names", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("RETRAIN_MIN_NEW_VALIDATED", str(10**9))  # always a full count
    sensor = build_retraining_sensor(60)
    with tempfile.TemporaryDirectory() as tmp:
        instances = {}
        for label, with_names in (("counts only", False), ("names", True)):
            home = Path(tmp) / label.replace(" ", "-")
            home.mkdir()
            instance = DagsterInstance.from_config(str(home))
            _fill(instance, args.partitions, args.names, with_names)
            instances[label] = instance

        def tick(label: str) -> str:
            result = sensor(
                build_sensor_context(resources=SENSOR_RESOURCES, instance=instances[label])
            )
            return getattr(result, "skip_message", "") or ""

        print(f"counts only: {tick('counts only')[:90]}")
        print(f"names:       {tick('names')[:90]}")
        seconds = {label: 0.0 for label in instances}
        for _ in range(args.repeat):  # alternate, so drifting load hits both alike
            for label in instances:
                seconds[label] += median_seconds(lambda label=label: tick(label), 1)
        base, names = (seconds[k] / args.repeat for k in ("counts only", "names"))
        print(
            f"{args.partitions} partitions x {args.names} names since the dataset: "
            f"counts only {base * 1000:.0f} ms, names {names * 1000:.0f} ms per tick, "
            f"ratio {names / base:.2f}x; load average {load_average()}"
        )
        for instance in instances.values():
            instance.dispose()


if __name__ == "__main__":
    main()
