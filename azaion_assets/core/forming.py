"""Form a dated training dataset from the validated annotations in ``data/``.

The dataset is a directory of hardlinks, so forming one costs directory entries, not image
bytes, and a dataset stays frozen while ``data/`` moves on: every writer replaces files by rename,
which leaves the linked inode untouched.

Writers keep working while a dataset forms, so the order is **link first, then validate the
staged link**: the bytes that are checked are the bytes that get published, even if the handler
replaces the file in ``data/`` a moment later. A label that breaks the YOLO rules is taken out of
the staging tree and its checked copy goes to ``data-corrupted/`` with a reason file (written
first, so a crash never leaves a moved file without its reason); ``data/`` loses it only if it
still holds that same inode. Files that vanish mid-run, or an image without its label (or the
reverse), may be writes in flight: they are reported as ``unpaired`` and left alone.

Each run stages into a directory of its own, under a per-partition lock, and swaps the result in
whole, so two runs of one partition never mix and a crash never leaves half a dataset.

Speed matters at 100,000+ annotations (see ``bench/``): the loop works on directory file
descriptors, reads labels with raw ``os.read``, takes inode numbers from the directory listing,
and for large datasets links in a helper process while this one validates the previous slice
(a link *thread* would need the GIL back after every ``link`` and ends up slower than none).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
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


def _free_name(folder: Path, fname: str) -> Path:
    """``folder/fname``, or ``folder/stem.N.ext`` if an earlier quarantine already used it."""
    target = folder / fname
    stem, dot, ext = fname.rpartition(".")
    n = 1
    while target.exists():
        target = folder / (f"{stem}.{n}.{ext}" if dot else f"{fname}.{n}")
        n += 1
    return target


def quarantine(
    tree: DataTree, name: str, files: list[tuple[Path, Path]], reason: str, origin: str
) -> None:
    """Put the checked copies of an annotation into ``data-corrupted/`` with a reason file.

    ``files`` pairs each checked file (a staged link, or the file in ``data/``) with its place
    in ``data/``. The reason is written first; then each checked file is linked into
    ``data-corrupted/`` and removed from ``data/`` only if ``data/`` still holds that inode (a
    newer version written meanwhile stays for the next dataset). Repeat quarantines of one name
    get numbered names instead of overwriting the earlier evidence.
    """
    corrupted = tree.corrupted
    corrupted.create()
    reasons = corrupted.root / "reasons"
    record_path = (
        _free_name(reasons, f"{name}.json") if reasons.exists() else reasons / f"{name}.json"
    )
    record = {
        "name": name,
        "files": [str(src.name) for _, src in files],
        "reason": reason,
        "origin": origin,
        "at": datetime.now(UTC).isoformat(),
    }
    atomic_write_text(record_path, json.dumps(record, indent=2))
    touched = {corrupted.images, corrupted.labels}
    for checked, source in files:
        kind = corrupted.images if source.parent.name == "images" else corrupted.labels
        try:
            checked_ino = os.stat(checked).st_ino
            os.link(checked, _free_name(kind, source.name))
        except FileNotFoundError:
            continue  # already gone: nothing to keep
        try:
            if os.stat(source).st_ino == checked_ino:
                os.unlink(source)
                touched.add(source.parent)
        except FileNotFoundError:
            pass
    for folder in touched:
        fsync_dir(folder)


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


def _copy_durably(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())


class _Linker:
    """Hardlink by directory fd; fall back to durable copies once the filesystem refuses links."""

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
        _copy_durably(self.src / name, dst / name)


_Link = tuple[str, str, str, str]  # name, image file, label file, split


def _link_slice(images: Path, labels: Path, staging: Path, links: list[_Link]) -> list[str]:
    """Link one slice into the staging layout (in any process); return the names that vanished."""
    opened: list[int] = []
    vanished: list[str] = []

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
        for name, image, label, split in links:
            (img_dir, img_fd), (lbl_dir, lbl_fd) = dst[split]
            try:
                label_link(label, lbl_dir, lbl_fd)
                image_link(image, img_dir, img_fd)
            except FileNotFoundError:  # moved or deleted by a writer since the scan
                for leftover in (lbl_dir / label, img_dir / image):
                    leftover.unlink(missing_ok=True)
                vanished.append(name)
    finally:
        for fd in opened:
            os.close(fd)
    return vanished


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
    rejected: dict[str, tuple[list[tuple[Path, Path]], str]] = field(default_factory=dict)
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
    """Plans the links for a slice of names, then validates what was staged."""

    def __init__(self, tree: DataTree, staging: Path, percentages: tuple[int, int, int]):
        self.tree, self.staging, self.percentages = tree, staging, percentages
        self.images = _scan(tree.data.images)
        self.labels = _scan(tree.data.labels, suffix=".txt")
        self.label_fds = {
            s: os.open(staging / s / "labels", os.O_RDONLY | os.O_DIRECTORY) for s in SPLITS
        }

    def close(self) -> None:
        for fd in self.label_fds.values():
            os.close(fd)

    def names(self) -> list[str]:
        return sorted(self.images.keys() | self.labels.keys())

    def plan(self, names: list[str], batch: _Batch) -> list[_Link]:
        links: list[_Link] = []
        data = self.tree.data
        for name in names:
            found = self.images.get(name, [])
            if len(found) > 1:
                files = [(data.images / f, data.images / f) for f, _ in found]
                batch.rejected[name] = (files, "several images share this name")
            elif name not in self.labels or not found:
                # Possibly a write in flight; leave it in place for the next dataset.
                batch.unpaired[name] = "image has no label file" if found else "label has no image"
            else:
                links.append(
                    (name, found[0][0], f"{name}.txt", assign_split(name, self.percentages))
                )
        return links

    def validate(self, links: list[_Link], vanished: list[str], batch: _Batch) -> None:
        gone = set(vanished)
        for name in gone:
            batch.unpaired[name] = "vanished while the dataset was formed"
        data = self.tree.data
        for name, image, label, split in links:
            if name in gone:
                continue
            fd = os.open(label, os.O_RDONLY, dir_fd=self.label_fds[split])
            try:
                raw = b"".join(iter(lambda fd=fd: os.read(fd, 1 << 16), b""))
            finally:
                os.close(fd)
            try:
                classes = parse_label(raw.decode("utf-8-sig"), NUM_SLOTS)
            except (LabelError, UnicodeDecodeError) as exc:
                staged = self.staging / split
                files = [
                    (staged / "labels" / label, data.labels / label),
                    (staged / "images" / image, data.images / image),
                ]
                batch.rejected[name] = (files, f"invalid label: {exc}")
                continue
            inode = self.images[name][0][1]
            entry = hashlib.blake2b(f"{name}\0{image}\0{inode}\0".encode(), digest_size=16)
            entry.update(raw)
            batch.digest += int.from_bytes(entry.digest(), "big")
            batch.counts[split] += 1
            batch.boxes[split].update(classes)


@contextmanager
def _partition_lock(tree: DataTree, partition: str):
    """One forming run per partition at a time (runs of one partition may overlap in Dagster)."""
    lock_path = tree.datasets / f".azaion-{partition}.lock"
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def form_dataset(
    tree: DataTree,
    partition: str,
    percentages: tuple[int, int, int],
    slot_names: dict[int, str],
) -> DatasetReport:
    """Build ``datasets/azaion-<partition>/`` from ``data/`` and return what it holds."""
    tree.ensure()
    final = tree.dataset_dir(partition)
    with _partition_lock(tree, partition):
        for stale in tree.datasets.glob(f".{final.name}.staging-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a crashed run (we hold the lock)
        staging = Path(tempfile.mkdtemp(dir=tree.datasets, prefix=f".{final.name}.staging-"))
        try:
            report = _form(tree, partition, percentages, slot_names, final, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        replace_dir(staging, final)
    return report


def _form(tree, partition, percentages, slot_names, final: Path, staging: Path) -> DatasetReport:
    for split in SPLITS:
        for kind in _KINDS:
            (staging / split / kind).mkdir(parents=True)
    former = _Former(tree, staging, percentages)
    total = _Batch()
    try:
        names = former.names()
        slices = [names[i : i + _SLICE] for i in range(0, len(names), _SLICE)]
        helper = len(names) >= _HELPER_PROCESS_FROM
        with (
            ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            if helper
            else _InProcess()
        ) as linker:

            def submit(links: list[_Link]) -> Future:
                return linker.submit(
                    _link_slice, tree.data.images, tree.data.labels, staging, links
                )

            # Pipeline: while slice i+1 is being linked, validate what slice i staged.
            planned = [former.plan(s, total) for s in slices]
            pending = submit(planned[0]) if planned else None
            for i, links in enumerate(planned):
                assert pending is not None
                vanished = pending.result()
                pending = submit(planned[i + 1]) if i + 1 < len(planned) else None
                former.validate(links, vanished, total)
    finally:
        former.close()

    for name, (files, reason) in sorted(total.rejected.items()):
        quarantine(tree, name, files, reason, origin=f"dataset {partition}")
        for checked, _ in files:
            if checked.is_relative_to(staging):
                checked.unlink(missing_ok=True)  # invalid: not part of the dataset
    for split in SPLITS:
        for kind in _KINDS:
            fsync_dir(staging / split / kind)

    # The version covers the split and the class names too: either changes the dataset.
    config = hashlib.blake2b(f"{percentages}{sorted(slot_names.items())}".encode(), digest_size=16)
    report = DatasetReport(
        partition=partition,
        path=final,
        images=total.counts,
        boxes=total.boxes,
        corrupted={name: reason for name, (_, reason) in sorted(total.rejected.items())},
        unpaired=dict(sorted(total.unpaired.items())),
        data_version=f"{(total.digest + int.from_bytes(config.digest(), 'big')) % (1 << 128):032x}",
        source_names=len(names),
    )
    _write_data_yaml(staging, final, slot_names)
    atomic_write_text(staging / MANIFEST, json.dumps(report.to_json(), indent=2))
    fsync_dir(staging)
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
