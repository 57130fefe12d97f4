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
whole, so two runs of one partition never mix and a crash never leaves half a dataset. Each
name's split comes from ``split_record`` (kept once recorded, else its source video's): the
record commits the run's splits before the swap, under a lock that all forming runs share.

Speed matters at 100,000+ annotations (see ``bench/``): the loop works on directory file
descriptors, reads labels with raw ``os.read``, takes inode numbers from the directory listing,
and for large datasets links in a helper process (``fsio/linking.py``) while this one validates each
slice as soon as it is staged (a link *thread* would need the GIL back after every ``link`` and
ends up slower than none). The links cost what ``cp -al`` costs, so the rest has to hide behind
them: the helper starts before the image scan, gets its first slice as soon as that is planned,
and small slices keep the wait for the last one short.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.dataset import split_record
from azaion_assets.lib.dataset.classes import NUM_SLOTS
from azaion_assets.lib.dataset.labels import LabelError, label_stems, parse_label
from azaion_assets.lib.dataset.split_record import SourceSplits
from azaion_assets.lib.dataset.split_stats import SourceStats
from azaion_assets.lib.dataset.video_split import SPLITS
from azaion_assets.lib.fsio.atomic import atomic_write_text, fsync_dir, replace_dir
from azaion_assets.lib.fsio.linking import KINDS as _KINDS
from azaion_assets.lib.fsio.linking import InProcess, LinkHelper
from azaion_assets.lib.fsio.linking import Link as _Link
from azaion_assets.lib.fsio.locks import file_lock

MANIFEST = "manifest.json"
DATA_YAML = "data.yaml"
_SLICE = 1024  # names per unit of work
_HELPER_PROCESS_FROM = 5_000  # labels; below this, linking inline is faster than a helper
_READ = 1 << 16  # bytes per label read: one read holds a label, a second one sees the end


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
    sources: SourceStats | None = None  # videos and frames per split
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
            "sources": self.sources.to_json() if self.sources else None,
            "created_at": self.created_at,
        }


def read_manifest(dataset_dir: Path) -> dict:
    """The manifest of a formed dataset, or a clear error if it was never formed."""
    path = Path(dataset_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no formed dataset at {dataset_dir} (missing {MANIFEST})")
    return json.loads(path.read_text("utf-8"))


def split_images(dataset_dir: Path, split: str) -> list[Path]:
    """A formed dataset's images of one split, sorted (none if the split folder is missing)."""
    folder = Path(dataset_dir) / split / "images"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


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


def _scan_images(folder: Path) -> tuple[dict[str, tuple[str, int]], dict[str, list[str]]]:
    """Map name (stem) to its image's (file name, inode), skipping hidden files (in-flight temps).

    A name with more than one image also maps to all of its file names in the second dict. Every
    writer replaces files by rename, so an edited image gets a new inode: the snapshot digest
    sees the edit without a ``stat`` call per image.
    """
    images: dict[str, tuple[str, int]] = {}
    several: dict[str, list[str]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            fname = entry.name
            if fname.startswith("."):
                continue
            stem = fname.rpartition(".")[0] or fname
            if stem in images:
                several.setdefault(stem, [images[stem][0]]).append(fname)
            else:
                images[stem] = (fname, entry.inode())
    return images, several


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

    def __init__(self, tree: DataTree, staging: Path, splits: SourceSplits, labels: set[str]):
        self.tree, self.staging, self.split_of = tree, staging, splits.split_of
        self.labels = labels
        self.images, self.several = _scan_images(tree.data.images)
        self.label_fds = {
            s: os.open(staging / s / "labels", os.O_RDONLY | os.O_DIRECTORY) for s in SPLITS
        }

    def close(self) -> None:
        for fd in self.label_fds.values():
            os.close(fd)

    def names(self) -> list[str]:
        """Every name, sorted: links in name order run faster (names follow creation order)."""
        return sorted(self.images.keys() | self.labels)

    def plan(self, names: list[str], batch: _Batch) -> list[_Link]:
        links: list[_Link] = []
        images, labels, several, split_of = self.images, self.labels, self.several, self.split_of
        for name in names:
            if name in several:
                data = self.tree.data.images
                files = [(data / f, data / f) for f in several[name]]
                batch.rejected[name] = (files, "several images share this name")
            elif name not in labels or name not in images:
                # Possibly a write in flight; leave it in place for the next dataset.
                batch.unpaired[name] = (
                    "image has no label file" if name in images else "label has no image"
                )
            else:
                links.append((name, images[name][0], f"{name}.txt", split_of(name)))
        return links

    def validate(self, links: list[_Link], vanished: list[str], batch: _Batch) -> None:
        gone = set(vanished)
        for name in gone:
            batch.unpaired[name] = "vanished while the dataset was formed"
        images, label_fds, counts = self.images, self.label_fds, batch.counts
        classes: dict[str, list[int]] = {split: [] for split in SPLITS}  # counted once per slice
        digest = 0
        for name, image, label, split in links:
            if name in gone:
                continue
            fd = os.open(label, os.O_RDONLY, dir_fd=label_fds[split])
            try:
                chunks = [os.read(fd, _READ)]
                while chunks[-1]:  # to the end, even if a read comes back short
                    chunks.append(os.read(fd, _READ))
            finally:
                os.close(fd)
            raw = b"".join(chunks)
            try:
                found = parse_label(raw.decode("utf-8-sig"), NUM_SLOTS)
            except (LabelError, UnicodeDecodeError) as exc:
                staged, data = self.staging / split, self.tree.data
                files = [
                    (staged / "labels" / label, data.labels / label),
                    (staged / "images" / image, data.images / image),
                ]
                batch.rejected[name] = (files, f"invalid label: {exc}")
                continue
            entry = hashlib.blake2b(
                f"{name}\0{image}\0{images[name][1]}\0{split}\0".encode(), digest_size=16
            )
            entry.update(raw)
            digest += int.from_bytes(entry.digest(), "big")
            counts[split] += 1
            classes[split] += found
        batch.digest += digest
        for split, found in classes.items():
            batch.boxes[split].update(found)


@contextmanager
def _partition_lock(tree: DataTree, partition: str):
    """One forming run per partition at a time (runs of one partition may overlap in Dagster)."""
    with file_lock(tree.datasets / f".azaion-{partition}.lock"):
        yield


def form_dataset(
    tree: DataTree,
    partition: str,
    percentages: tuple[int, int, int],
    slot_names: dict[int, str],
) -> DatasetReport:
    """Build ``datasets/azaion-<partition>/`` from ``data/`` and return what it holds."""
    tree.ensure()
    final = tree.dataset_dir(partition)
    with _partition_lock(tree, partition), split_record.locked(tree):
        for stale in tree.datasets.glob(f".{final.name}.staging-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a crashed run (we hold the lock)
        staging = Path(tempfile.mkdtemp(dir=tree.datasets, prefix=f".{final.name}.staging-"))
        try:
            report = _form(tree, partition, percentages, slot_names, final, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        replace_dir(staging, final)  # after the split record committed this dataset's splits
    return report


def _form(tree, partition, percentages, slot_names, final: Path, staging: Path) -> DatasetReport:
    for split in SPLITS:
        for kind in _KINDS:
            (staging / split / kind).mkdir(parents=True)
    data = tree.data
    labels = label_stems(data.labels)
    # Start a helper before the image scan, so that its start-up overlaps the scan.
    helper = LinkHelper if len(labels) >= _HELPER_PROCESS_FROM else InProcess
    total = _Batch()
    with helper(data.images, data.labels, staging) as linker:
        splits = SourceSplits(tree, percentages)
        former = _Former(tree, staging, splits, labels)
        try:
            names = former.names()
            planned: deque[list[_Link]] = deque()
            for i in range(0, len(names), _SLICE):
                planned.append(former.plan(names[i : i + _SLICE], total))
                linker.submit(planned[-1])
            # Validate each slice as soon as it is staged, while the helper links the next ones.
            while planned:
                links = planned.popleft()  # and let it go once checked
                former.validate(links, linker.result(), total)
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
    left_out = total.rejected.keys() | total.unpaired.keys()
    sources = splits.commit((n for n in names if n not in left_out), total.counts)

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
        sources=sources,
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
