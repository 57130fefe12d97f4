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
reverse), may be writes in flight: they are reported as ``unpaired`` and left alone. Each slice
is planned and checked in ``slices.py``, rejects go through ``quarantine.py``, and the files a
formed dataset holds are defined in ``formed_dataset.py``.

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
import shutil
import tempfile
from collections import deque
from contextlib import contextmanager
from pathlib import Path

from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.dataset import split_record
from azaion_assets.lib.dataset.formed_dataset import MANIFEST, DatasetReport, write_data_yaml
from azaion_assets.lib.dataset.quarantine import quarantine
from azaion_assets.lib.dataset.slices import Batch, Former
from azaion_assets.lib.dataset.split_record import SourceSplits
from azaion_assets.lib.dataset.video_split import SPLITS
from azaion_assets.lib.fsio.atomic import atomic_write_text, fsync_dir, replace_dir
from azaion_assets.lib.fsio.linking import KINDS as _KINDS
from azaion_assets.lib.fsio.linking import InProcess, LinkHelper
from azaion_assets.lib.fsio.linking import Link as _Link
from azaion_assets.lib.fsio.locks import file_lock
from azaion_assets.lib.labels.yolo_format import label_stems

_SLICE = 1024  # names per unit of work
_HELPER_PROCESS_FROM = 5_000  # labels; below this, linking inline is faster than a helper


@contextmanager
def forming_lock(tree: DataTree, partition: str):
    """One forming run per partition at a time (runs of one partition may overlap in Dagster);
    housekeeping takes it too before it removes the partition's dataset."""
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
    with forming_lock(tree, partition), split_record.locked(tree):
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
    total = Batch()
    with helper(data.images, data.labels, staging) as linker:
        splits = SourceSplits(tree, percentages)
        former = Former(tree, staging, splits, labels)
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
    layout = f"{percentages}{sorted(slot_names.items())}".encode()
    layout_digest = int.from_bytes(hashlib.blake2b(layout, digest_size=16).digest(), "big")
    report = DatasetReport(
        partition=partition,
        path=final,
        images=total.counts,
        boxes=total.boxes,
        corrupted={name: reason for name, (_, reason) in sorted(total.rejected.items())},
        unpaired=dict(sorted(total.unpaired.items())),
        data_version=f"{(total.digest + layout_digest) % (1 << 128):032x}",
        source_names=len(names),
        sources=sources,
    )
    write_data_yaml(staging, final, slot_names)
    atomic_write_text(staging / MANIFEST, json.dumps(report.to_json(), indent=2))
    fsync_dir(staging)
    return report
