"""Benchmark: form a dataset from N small annotations, against ``cp -al`` and ``cp -a``.

Run with ``make bench`` or ``python -m bench.dataset_forming [--count N] [--repeat R]``.

``cp -al`` (a hardlink farm of the same tree) is the floor for what forming does: it links every
image and label once. Forming also reads and validates each label, hashes the snapshot and
writes the split layout. Plain ``cp -a`` copies every byte, which is what forming avoids. All
three run in the same process on the same tree, alternating, and the medians are compared as
ratios, so a noisy machine moves all of them together. Goal: forming <= 1.5x ``cp -al``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

from azaion_assets.dev.synthetic import render
from azaion_assets.lib.config.datatree import AnnotationDir, DataTree
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.dataset.formed_dataset import read_manifest
from azaion_assets.lib.dataset.forming import form_dataset
from azaion_assets.lib.labels.classes import default_classes_json, parse_classes, slot_names
from azaion_assets.lib.labels.yolo_format import format_label

GOAL = 1.5


def populate(target: AnnotationDir, count: int, seed: int = 0) -> int:
    """Write ``count`` small annotations quickly (no fsync: this is set-up, not the subject)."""
    rng = random.Random(seed)
    images = [render(rng, 64, 48)[0] for _ in range(16)]  # a few real JPEGs, reused
    target.create()
    size = 0
    for i in range(count):
        name = f"bench_{i:07d}"
        boxes = [
            (rng.choice((0, 1, 6, 20)), 0.5, 0.5, rng.uniform(0.05, 0.5), rng.uniform(0.05, 0.5))
            for _ in range(rng.randint(0, 4))
        ]
        image = images[i % len(images)]
        (target.images / f"{name}.jpg").write_bytes(image)
        (target.labels / f"{name}.txt").write_text(format_label(boxes))
        size += len(image)
    return size


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run(count: int, repeat: int, workdir: Path) -> dict[str, float]:
    settings = Settings(azaion_root_dir=workdir / "azaion")  # type: ignore[call-arg]
    tree = DataTree.from_settings(settings).ensure()
    names = slot_names(parse_classes(default_classes_json()))
    started = time.perf_counter()
    image_bytes = populate(tree.data, count)
    print(
        f"populated {count} annotations ({image_bytes / 1e6:.1f} MB of images) "
        f"in {time.perf_counter() - started:.1f}s"
    )
    subprocess.run(
        ["find", str(tree.data.root), "-type", "f"], check=True, stdout=subprocess.DEVNULL
    )  # warm the dentry cache for every contender

    results: dict[str, list[float]] = {"cp -al": [], "form_dataset": [], "cp -a": []}
    for i in range(repeat):
        for label, flags in (("cp -al", "-al"), ("cp -a", "-a")):
            dest = workdir / "copy"
            cmd = ["cp", flags, str(tree.data.root), str(dest)]
            results[label].append(timed(partial(subprocess.run, cmd, check=True)))
            shutil.rmtree(dest)
        partition = f"2026-01-{i + 1:02d}"
        form = partial(form_dataset, tree, partition, settings.split_percentages, names)
        results["form_dataset"].append(timed(form))
        formed = tree.dataset_dir(partition)
        assert sum(read_manifest(formed)["images"].values()) == count
        shutil.rmtree(formed)
    return {label: statistics.median(times) for label, times in results.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        medians = run(args.count, args.repeat, Path(tmp))
    base = medians["cp -al"]
    print(f"\n{args.count} annotations, median of {args.repeat} runs")
    print("| contender | seconds | annotations/s | ratio to cp -al |")
    print("|---|---:|---:|---:|")
    for label, seconds in medians.items():
        print(f"| {label} | {seconds:.2f} | {args.count / seconds:,.0f} | {seconds / base:.2f}x |")
    ratio = medians["form_dataset"] / base
    verdict = "meets" if ratio <= GOAL else "MISSES"
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nform_dataset / cp -al = {ratio:.2f}x: {verdict} the goal of <= {GOAL}x; load {load}")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
