"""Form a dated training dataset from the validated annotations in ``data/``.

The dataset is a directory of hardlinks, so forming one costs directory entries, not image
bytes, and a dataset stays frozen while ``data/`` moves on: every writer replaces files by rename,
which leaves the linked inode untouched. Labels that break the YOLO rules are moved to
``data-corrupted/`` with their reason instead of being dropped; an image without its label (or
the reverse) may be a write in flight, so it is left in place and reported. The new dataset is
built in a hidden staging directory and swapped in whole, so a crash never leaves half of one.

Speed matters at 100,000+ annotations (see ``bench/``): the loop works on directory file
descriptors (one path component per system call), reads labels with raw ``os.read``, takes
inode numbers from the directory listing instead of calling ``stat``, and for large datasets runs
as a two-stage pipeline: this process reads and validates one slice of names while a helper
process links the previous one. (A link thread would not do: it needs the GIL back after every
``link`` and ends up slower than no pipeline at all; two linkers would contend for the same
directory locks in the kernel.)
"""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import shutil
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from azaion_assets.core.atomic import atomic_write_text, fsync_dir, replace_dir
from azaion_assets.core.classes import NUM_SLOTS
from azaion_assets.core.datatree import DataTree
from azaion_assets.core.labels import LabelError, parse_label
from azaion_assets.core.split import SPLITS, assign_split

MANIFEST = "manifest.json"
DATA_YAML = "data.yaml"
_SLICE = 4096  # names per unit of work
_HELPER_PROCESS_FROM = 10_000  # names; below this, linking inline is faster than a helper
_KINDS = ("images", "labels")


@dataclass
class DatasetReport:
    """What a formed dataset holds; also written to ``manifest.json`` inside it."""

    partition: str
    path: Path
    images: dict[str, int]
    boxes: dict[str, Counter[int]]
    corrupted: dict[str, str]
    unpaired: dict[str, str]
    data_version: str
    source_names: int
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_json(self) -> dict:
        return {
            "partition": self.partition,
            "images": self.images,
            "boxes": {s: {str(k): v for k, v in sorted(c.items())} for s, c in self.boxes.items()},
            "corrupted": self.corrupted,
            "unpaired": self.unpaired,
            "data_version": self.data_version,
            "source_names": self.source_names,
            "created_at": self.created_at,
        }


def read_manifest(dataset_dir: Path) -> dict:
    """The manifest of a formed dataset, or a clear error if it was never formed."""
    path = Path(dataset_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no formed dataset at {dataset_dir} (missing {MANIFEST})")
    return json.loads(path.read_text("utf-8"))


def quarantine(tree: DataTree, name: str, images: list[str], reason: str, origin: str) -> None:
    """Move an annotation out of ``data/`` into ``data-corrupted/`` with a reason file."""
    corrupted = tree.corrupted
    corrupted.create()
    for image in images:
        os.replace(tree.data.images / image, corrupted.images / image)
    label = tree.data.labels / f"{name}.txt"
    if label.exists():
        os.replace(label, corrupted.labels / f"{name}.txt")
    record = {
        "name": name,
        "images": images,
        "reason": reason,
        "origin": origin,
        "at": datetime.now(UTC).isoformat(),
    }
    atomic_write_text(corrupted.root / "reasons" / f"{name}.json", json.dumps(record, indent=2))


def _scan(folder: Path, suffix: str | None = None) -> dict[str, list[tuple[str, int]]]:
    """Map name (stem) to its (file name, inode) pairs, skipping hidden files (in-flight temps).

    Every writer replaces files by rename, so an edited image gets a new inode: the snapshot
    digest sees the edit without a ``stat`` call per image.
    """
    found: dict[str, list[tuple[str, int]]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            fname = entry.name
            if fname.startswith("."):
                continue
            stem, dot, ext = fname.rpartition(".")
            if not dot:
                stem, ext = fname, ""
            if suffix is not None and f".{ext}" != suffix:
                continue
            found.setdefault(stem, []).append((fname, entry.inode()))
    return found


def _read_all(dir_fd: int, name: str) -> bytes:
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class _Linker:
    """Hardlink by directory fd; fall back to copies once the filesystem refuses links."""

    def __init__(self, src: Path, src_fd: int) -> None:
        self.src, self.src_fd = src, src_fd
        self.copying = False

    def __call__(self, name: str, dst: Path, dst_fd: int) -> None:
        if not self.copying:
            try:
                os.link(name, name, src_dir_fd=self.src_fd, dst_dir_fd=dst_fd)
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                self.copying = True  # e.g. data/ and datasets/ on different filesystems
        shutil.copy2(self.src / name, dst / name)


_Link = tuple[str, str, str]  # image file, label file, split


def _link_slice(images: Path, labels: Path, staging: Path, links: list[_Link]) -> None:
    """Link one slice of validated annotations into the staging layout (in any process)."""
    opened: list[int] = []

    def open_dir(path: Path) -> int:
        opened.append(os.open(path, os.O_RDONLY | os.O_DIRECTORY))
        return opened[-1]

    try:
        image_link = _Linker(images, open_dir(images))
        label_link = _Linker(labels, open_dir(labels))
        dst = {
            split: [(staging / split / kind, open_dir(staging / split / kind)) for kind in _KINDS]
            for split in SPLITS
        }
        for image, label, split in links:
            (img_dir, img_fd), (lbl_dir, lbl_fd) = dst[split]
            image_link(image, img_dir, img_fd)
            label_link(label, lbl_dir, lbl_fd)
    finally:
        for fd in opened:
            os.close(fd)


class _InProcess:
    """The executor interface, run inline: for small datasets a helper process costs more."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass
class _Batch:
    """What one slice of names yielded."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    boxes: dict[str, Counter[int]] = field(default_factory=lambda: {s: Counter() for s in SPLITS})
    rejected: dict[str, tuple[list[str], str]] = field(default_factory=dict)
    unpaired: dict[str, str] = field(default_factory=dict)
    digest: int = 0  # sum of per-annotation digests: independent of order and slicing

    def merge(self, other: _Batch) -> None:
        for split in SPLITS:
            self.counts[split] += other.counts[split]
            self.boxes[split].update(other.boxes[split])
        self.rejected.update(other.rejected)
        self.unpaired.update(other.unpaired)
        self.digest = (self.digest + other.digest) % (1 << 128)


class _Former:
    """Reads, validates and splits annotations; linking happens in ``_link_slice``."""

    def __init__(self, tree: DataTree, percentages: tuple[int, int, int]):
        self.percentages = percentages
        self.images = _scan(tree.data.images)
        self.labels = _scan(tree.data.labels, suffix=".txt")
        self.label_fd = os.open(tree.data.labels, os.O_RDONLY | os.O_DIRECTORY)

    def close(self) -> None:
        os.close(self.label_fd)

    def names(self) -> list[str]:
        return sorted(self.images.keys() | self.labels.keys())

    def validate(self, names: list[str]) -> tuple[_Batch, list[_Link]]:
        batch, links = _Batch(), []
        for name in names:
            found = self.images.get(name, [])
            if len(found) > 1:
                batch.rejected[name] = ([f for f, _ in found], "several images share this name")
                continue
            if name not in self.labels or not found:
                # Possibly a write in flight; leave it in place for the next dataset.
                batch.unpaired[name] = "image has no label file" if found else "label has no image"
                continue
            image, inode = found[0]
            label = f"{name}.txt"
            raw = _read_all(self.label_fd, label)
            try:
                classes = parse_label(raw.decode("utf-8"), NUM_SLOTS)
            except (LabelError, UnicodeDecodeError) as exc:
                batch.rejected[name] = ([image], f"invalid label: {exc}")
                continue
            entry = hashlib.blake2b(f"{name}\0{image}\0{inode}\0".encode(), digest_size=16)
            entry.update(raw)
            batch.digest += int.from_bytes(entry.digest(), "big")
            split = assign_split(name, self.percentages)
            links.append((image, label, split))
            batch.counts[split] += 1
            batch.boxes[split].update(classes)
        return batch, links


def form_dataset(
    tree: DataTree,
    partition: str,
    percentages: tuple[int, int, int],
    slot_names: dict[int, str],
) -> DatasetReport:
    """Build ``datasets/azaion-<partition>/`` from ``data/`` and return what it holds."""
    tree.ensure()
    final = tree.dataset_dir(partition)
    staging = final.with_name(f".{final.name}.staging")
    if staging.exists():
        shutil.rmtree(staging)  # left by a crashed run
    for split in SPLITS:
        for kind in _KINDS:
            (staging / split / kind).mkdir(parents=True)

    former = _Former(tree, percentages)
    total = _Batch()
    try:
        names = former.names()
        helper = len(names) >= _HELPER_PROCESS_FROM
        with (
            ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            if helper
            else _InProcess()
        ) as linker:
            pending = []
            for start in range(0, len(names), _SLICE):
                batch, links = former.validate(names[start : start + _SLICE])
                total.merge(batch)
                job = linker.submit(_link_slice, tree.data.images, tree.data.labels, staging, links)
                pending.append(job)
            for job in pending:
                job.result()  # re-raise any link failure here
    finally:
        former.close()

    for name, (found, reason) in sorted(total.rejected.items()):
        quarantine(tree, name, found, reason, origin=f"dataset {partition}")

    report = DatasetReport(
        partition=partition,
        path=final,
        images=total.counts,
        boxes=total.boxes,
        corrupted={name: reason for name, (_, reason) in sorted(total.rejected.items())},
        unpaired=dict(sorted(total.unpaired.items())),
        data_version=f"{total.digest:032x}",
        source_names=len(names),
    )
    _write_data_yaml(staging, final, slot_names)
    atomic_write_text(staging / MANIFEST, json.dumps(report.to_json(), indent=2))
    fsync_dir(staging)
    replace_dir(staging, final)
    return report


def _write_data_yaml(staging: Path, final: Path, slot_names: dict[int, str]) -> None:
    data = {
        "path": str(final.resolve()),
        "train": "train/images",
        "val": "valid/images",
        "test": "test/images",
        "nc": len(slot_names),
        "names": dict(sorted(slot_names.items())),
    }
    atomic_write_text(staging / DATA_YAML, yaml.safe_dump(data, sort_keys=False))
