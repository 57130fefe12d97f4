"""One slice of names while a dataset forms: plan its links, then check what was staged.

Planning pairs each image with its label and sets aside what cannot be paired; checking reads
each staged label (the bytes that get published), parses it, counts its boxes and adds it to the
data version. Both work on directory listings and file descriptors, not paths: at 100,000+
annotations, a ``stat`` or a path lookup per file shows in the benchmark (``bench/``).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.dataset.split_record import SourceSplits
from azaion_assets.lib.dataset.video_split import SPLITS
from azaion_assets.lib.fsio.linking import Link
from azaion_assets.lib.labels.classes import NUM_SLOTS
from azaion_assets.lib.labels.yolo_format import LabelError, parse_label

_READ = 1 << 16  # bytes per label read: one read holds a label, a second one sees the end


def scan_images(folder: Path) -> tuple[dict[str, tuple[str, int]], dict[str, list[str]]]:
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
class Batch:
    """What one slice of names yielded."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    boxes: dict[str, Counter[int]] = field(default_factory=lambda: {s: Counter() for s in SPLITS})
    rejected: dict[str, tuple[list[tuple[Path, Path]], str]] = field(default_factory=dict)
    unpaired: dict[str, str] = field(default_factory=dict)
    digest: int = 0  # sum of per-annotation digests: independent of order and slicing

    def merge(self, other: Batch) -> None:
        for split in SPLITS:
            self.counts[split] += other.counts[split]
            self.boxes[split].update(other.boxes[split])
        self.rejected.update(other.rejected)
        self.unpaired.update(other.unpaired)
        self.digest = (self.digest + other.digest) % (1 << 128)


class Former:
    """Plans the links for a slice of names, then validates what was staged."""

    def __init__(self, tree: DataTree, staging: Path, splits: SourceSplits, labels: set[str]):
        self.tree, self.staging, self.split_of = tree, staging, splits.split_of
        self.labels = labels
        self.images, self.several = scan_images(tree.data.images)
        self.label_fds = {
            s: os.open(staging / s / "labels", os.O_RDONLY | os.O_DIRECTORY) for s in SPLITS
        }

    def close(self) -> None:
        for fd in self.label_fds.values():
            os.close(fd)

    def names(self) -> list[str]:
        """Every name, sorted: links in name order run faster (names follow creation order)."""
        return sorted(self.images.keys() | self.labels)

    def plan(self, names: list[str], batch: Batch) -> list[Link]:
        links: list[Link] = []
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

    def validate(self, links: list[Link], vanished: list[str], batch: Batch) -> None:
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
