"""Quarantine of annotations that fail validation when a dataset forms.

The checked copies go to ``data-corrupted/`` with a reason file, and ``data/`` loses a file only
while it still holds the very inode that was checked, so a fix written meanwhile survives.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.fsio.atomic import atomic_write_text, fsync_dir


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
