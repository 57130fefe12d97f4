"""Compare data trees by content: what the ingest tests assert about."""

from __future__ import annotations

import hashlib
from pathlib import Path

from azaion_assets.lib.config.datatree import AnnotationDir, DataTree
from azaion_assets.lib.ingest.apply_events import quarantine_dir


def make_tree(root: Path) -> DataTree:
    """A data tree with the default folder names at ``root`` (independent of the environment)."""
    return DataTree(
        root,
        AnnotationDir(root / "data"),
        AnnotationDir(root / "data-seed"),
        AnnotationDir(root / "data_deleted"),
        AnnotationDir(root / "data-corrupted"),
    ).ensure()


def snapshot(tree: DataTree) -> dict[str, str]:
    """Every file of data/, data-seed/, data_deleted/ and the stream quarantine, by content.

    Hidden files (temps) are included on purpose: a finished ingest must leave none.
    """
    found: dict[str, str] = {}
    folders = [tree.data.root, tree.seed.root, tree.deleted.root, quarantine_dir(tree)]
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                rel = str(path.relative_to(tree.root))
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return found


def places(tree: DataTree, name: str) -> dict[str, list[str]]:
    """Which folders hold files of ``name``: {"data": ["images/x.jpg", "labels/x.txt"], ...}."""
    out: dict[str, list[str]] = {}
    for key, folder in (("data", tree.data), ("seed", tree.seed), ("deleted", tree.deleted)):
        files = sorted(
            f"{kind}/{p.name}"
            for kind in ("images", "labels")
            for p in (folder.root / kind).glob(f"{name}.*")
        )
        if files:
            out[key] = files
    return out
