"""Carrying out a retention plan: each removal under the lock of whatever could be using it, and
safe against a crash at any point.

A folder is first renamed to a hidden ``.pruned-<name>`` beside it (one atomic rename, the
parent fsynced) and only then deleted. A ``kill -9`` between the two, or half-way through the
delete, leaves a hidden folder that nothing of the pipeline lists and the next run removes
first (``sweep``); a dataset or model is either there whole or gone. The locks are the
pipeline's own: a dataset's forming lock, a model's training lock, and the publish and release
locks, under which the champion is read again, so a promotion made after the plan was decided
keeps its model.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from azaion_assets.lib.champion.files import held_partition, publish_lock
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.dataset.forming import forming_lock
from azaion_assets.lib.fsio.atomic import fsync_dir
from azaion_assets.lib.fsio.locks import file_lock
from azaion_assets.lib.housekeeping.retention import DATASET, MODEL, RELEASE, Decision
from azaion_assets.lib.release.bundle import release_lock
from azaion_assets.lib.training.trainer import training_lock_file

PRUNED = ".pruned-"


@dataclass
class Outcome:
    """What a run removed (or, dry, would remove), by kind: count and bytes; and what it left
    because the plan no longer held when its turn came."""

    removed: dict[str, list[int]] = field(default_factory=dict)  # kind -> [count, bytes]
    skipped: list[str] = field(default_factory=list)

    def count(self, kind: str, size: int) -> None:
        entry = self.removed.setdefault(kind, [0, 0])
        entry[0] += 1
        entry[1] += size


def size_of(path: Path) -> int:
    """Bytes a removal frees: those of the files it holds the last link to. A dataset is hard
    links into data/, so removing one frees its directory entries, not its images."""
    paths = [path] if path.is_file() else [Path(r, n) for r, _, ns in os.walk(path) for n in ns]
    stats = [os.lstat(p) for p in paths]
    return sum(s.st_size for s in stats if s.st_nlink == 1)


def sweep(tree: DataTree) -> int:
    """Remove what an interrupted run left renamed but not yet deleted; returns how many."""
    left = [p for parent in (tree.datasets, tree.models) for p in parent.glob(f"{PRUNED}*")]
    left += list(tree.models.glob(f"*/{PRUNED}*"))  # release folders inside kept models
    for path in left:
        shutil.rmtree(path, ignore_errors=True)
    return len(left)


def remove(path: Path) -> None:
    """Rename out of sight, make the rename durable, then delete."""
    if path.is_file():
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)
        return
    hidden = path.with_name(PRUNED + path.name)
    os.rename(path, hidden)
    fsync_dir(path.parent)
    shutil.rmtree(hidden)


@contextmanager
def _locked(tree: DataTree, decision: Decision) -> Iterator[str | None]:
    """The locks ``decision`` needs; yields why it no longer holds, or None."""
    with ExitStack() as stack:
        day = decision.partition
        if decision.kind == DATASET:
            stack.enter_context(forming_lock(tree, str(day)))
        elif decision.kind in (MODEL, RELEASE):
            stack.enter_context(file_lock(training_lock_file(tree.model_dir(str(day)))))
            stack.enter_context(release_lock(tree))  # before the publish lock, as a release
            stack.enter_context(publish_lock(tree.models))
            if held_partition(tree.champion) == day:
                yield f"{decision.path.name}: became the champion after the plan"
                return
        yield None


def carry_out(tree: DataTree, decisions: list[Decision], dry_run: bool) -> Outcome:
    """Remove what ``decisions`` say to remove (``dry_run``: only count it)."""
    outcome = Outcome()
    if not dry_run:
        sweep(tree)
    for decision in decisions:
        if not decision.remove or not decision.path.exists():
            continue
        size = size_of(decision.path)
        if dry_run:
            outcome.count(decision.kind, size)
            continue
        with _locked(tree, decision) as changed:
            if changed is not None:
                outcome.skipped.append(changed)
                continue
            remove(decision.path)
            outcome.count(decision.kind, size)
    return outcome
