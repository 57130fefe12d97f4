"""A year of the data tree, day by day, with housekeeping's daily plan carried out as the schedule
does: disk by kind on chosen days, with and without it.

Annotations are written at ``1/scale`` of the stated rate (real JPEGs and labels, formed into a
real dataset every day by ``form_dataset``); a model folder a day holds the files a training
leaves (``best.pt``, ``last.pt``, one ``epochN.pt`` per ``TRAINING_SAVE_PERIOD``, the ONNX,
records) at their production sizes as sparse files, so their bytes are counted as a full-size
model's without filling the disk. Quarantine files come at a stated share of the messages, at
full count and size.
Reported figures are scaled back up: the annotators' data and the datasets' directory entries by
``scale``, the models as they are.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from azaion_assets.dev.synthetic import render
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.dataset.forming import form_dataset
from azaion_assets.lib.housekeeping.pruning import carry_out
from azaion_assets.lib.housekeeping.retention import Facts, plan, retention_of
from azaion_assets.lib.ingest.planning import quarantine_dir
from azaion_assets.lib.labels.classes import default_classes_json, parse_classes, slot_names
from azaion_assets.lib.labels.yolo_format import format_label

_IMAGES = [render(random.Random(i), 64, 48)[0] for i in range(8)]  # real JPEGs, reused

FIRST_DAY = date(2026, 1, 1)


@dataclass(frozen=True)
class Rate:
    """The production rate the year is built at, and what it assumes."""

    annotations_per_day: int = 30_000
    image_kb: int = 150  # an aerial frame as the annotators send it
    quarantined_share: float = 0.005
    promote_every_days: int = 7  # a challenger wins about once a week, and is released


@dataclass(frozen=True)
class ModelSizes:
    """Bytes of one training's files, from the production model's parameter count: fp16 weights
    in ``best.pt``, plus fp32 SGD momentum in the resumable checkpoints, fp32 in the ONNX."""

    params: int
    checkpoints: int  # epochN.pt files a training leaves

    @property
    def files(self) -> dict[str, int]:
        best, resumable, onnx = 2 * self.params, 6 * self.params, 4 * self.params
        sizes = {"weights/best.pt": best, "weights/last.pt": resumable, "weights/best.onnx": onnx}
        sizes.update({f"weights/epoch{n}.pt": resumable for n in range(1, self.checkpoints + 1)})
        return sizes


@dataclass
class YearTree:
    scale: int
    rate: Rate
    sizes: ModelSizes
    days: int = 365
    by_day: dict[int, dict[str, float]] = field(default_factory=dict)
    without: dict[int, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _sparse(path: Path, size: int, when: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.truncate(size)
    os.utime(path, (when, when))


def _model_folder(tree: DataTree, day: str, sizes: ModelSizes, released: bool, when: float):
    folder = tree.model_dir(day)
    for name, size in sizes.files.items():
        _sparse(folder / name, size, when)
    for record in ("results.csv", "args.yaml", "training.json", "evaluation.json"):
        (folder / record).write_text("{}\n")
    if released:  # the encrypted parts of azaion.pt and azaion.onnx
        _sparse(folder / "release" / "azaion.pt.enc", sizes.files["weights/best.pt"], when)
        _sparse(folder / "release" / "azaion.onnx.enc", sizes.files["weights/best.onnx"], when)


def _quarantine(tree: DataTree, day: int, count: int, image_kb: int, when: float) -> None:
    folder = quarantine_dir(tree) / f"day-{day:03d}"
    for i in range(count):  # at full count and size (sparse)
        _sparse(folder / f"{i:06d}.msg", image_kb * 1000, when)


def _du_after_data(tree: DataTree, path: Path) -> int:
    """Bytes ``path`` adds beside ``data/`` (``du`` counts a hard link once: a dataset's images
    and labels are data's, so what remains is its directory entries and its own files)."""
    out = subprocess.run(
        ["du", "-s", "-B1", str(tree.data.root), str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(out[2])


def disk_by_kind(tree: DataTree, models: Path | None = None) -> dict[str, int]:
    """Bytes by kind: datasets beside data (``_du_after_data``); models and quarantine by their
    files' sizes (sparse here)."""
    disk = {"datasets": _du_after_data(tree, tree.datasets)}
    kinds = {"checkpoints": 0, "weights and ONNX": 0, "release parts": 0, "records": 0}
    for root, _, names in os.walk(models or tree.models):
        for name in names:
            size = os.lstat(os.path.join(root, name)).st_size
            if "release" in root:
                kinds["release parts"] += size
            elif name == "last.pt" or name.startswith("epoch"):
                kinds["checkpoints"] += size
            elif "weights" in root:
                kinds["weights and ONNX"] += size
            else:
                kinds["records"] += size
    if models is None:
        q = quarantine_dir(tree)
        kinds["quarantine"] = sum(p.stat().st_size for p in q.rglob("*") if p.is_file())
    return disk | kinds


def build(root: Path, year: YearTree, report_days: set[int], first: date = FIRST_DAY) -> DataTree:
    """The year from ``first``, day by day: the day's annotations, its dataset, its model, then
    (as the 03:30 schedule does the next night) housekeeping's plan carried out, but for the last
    day. ``year.by_day`` gets disk by kind on ``report_days``, at the day's end before that night's
    housekeeping (the day's peak)."""
    settings = Settings(azaion_root_dir=root)  # type: ignore[call-arg]
    tree = DataTree.from_settings(settings).ensure()
    names = slot_names(parse_classes(default_classes_json()))
    keep = retention_of(settings)
    per_day = max(1, year.rate.annotations_per_day // year.scale)
    quarantined = round(year.rate.annotations_per_day * year.rate.quarantined_share)
    promoted: list[str] = []
    created: dict[str, float] = {}  # what the days made, none removed: the year without it
    forming = pruning = 0.0
    for n in range(1, year.days + 1):
        today = first + timedelta(days=n - 1)
        day = today.isoformat()
        when = datetime.combine(today, datetime.min.time()).timestamp() + 12 * 3600
        _annotate(tree, n, per_day)
        _quarantine(tree, n, quarantined, year.rate.image_kb, when)
        started = time.perf_counter()
        form_dataset(tree, day, settings.split_percentages, names)
        forming += time.perf_counter() - started
        released = n % year.rate.promote_every_days == 0
        if released:
            promoted.append(day)
        _model_folder(tree, day, year.sizes, released, when)
        made = disk_by_kind(tree, tree.model_dir(day))
        made["datasets"] = _du_after_data(tree, tree.dataset_dir(day)) * year.scale
        made["quarantine"] = quarantined * year.rate.image_kb * 1000
        for kind, size in made.items():
            created[kind] = created.get(kind, 0) + size
        if n in report_days:  # the day's peak: before the night's housekeeping
            data = n * year.rate.annotations_per_day * year.rate.image_kb * 1000
            year.by_day[n] = scaled_disk(tree, year) | {"data": data}
            year.without[n] = created | {"data": data}
        if n < year.days:  # the last night's run is the one ``bench.year`` times
            window = (today - timedelta(days=keep.models_days)).isoformat()
            champions = tuple(reversed(promoted[-(1 + keep.champions) :]))
            facts = Facts(champions, frozenset(d for d in promoted if d >= window))
            started = time.perf_counter()
            carry_out(tree, plan(tree, today + timedelta(days=1), keep, facts), dry_run=False)
            pruning += time.perf_counter() - started
    year.seconds = {"forming": forming, "housekeeping": pruning}
    return tree


def _annotate(tree: DataTree, n: int, count: int) -> None:
    """The day's annotations, straight into ``data/`` (set-up, not the subject: no fsync)."""
    rng = random.Random(n)
    for i in range(count):
        name = f"day{n:03d}_{i:06d}"
        boxes = [(rng.choice((0, 1, 6, 20)), 0.5, 0.5, 0.2, 0.3) for _ in range(rng.randint(1, 4))]
        (tree.data.images / f"{name}.jpg").write_bytes(_IMAGES[i % len(_IMAGES)])
        (tree.data.labels / f"{name}.txt").write_text(format_label(boxes))


def scaled_disk(tree: DataTree, year: YearTree) -> dict[str, float]:
    """Full-scale bytes: the datasets' directory entries times ``scale``; models and quarantine
    are full size already. (The data is at the stated image size: the images here are tiny.)"""
    out: dict[str, float] = dict(disk_by_kind(tree))
    out["datasets"] *= year.scale
    return out
