"""Carrying out the plan: what is removed and counted, a dry run that touches nothing, a
promotion made after the plan, and ``kill -9`` at random moments of a removal."""

import random
import signal
import subprocess
import sys
import time
from datetime import date

from azaion_assets.lib.champion.files import publish_pair
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.housekeeping.pruning import PRUNED, carry_out, sweep
from azaion_assets.lib.housekeeping.retention import (
    CHECKPOINTS,
    DATASET,
    MODEL,
    Facts,
    Retention,
    dated_folders,
    plan,
)

TODAY = date(2026, 12, 7)
KEEP = Retention(datasets_days=2, models_days=2, champions=0, quarantine_days=10)


def _files(folder, count: int, size: int = 100) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"f{i:05d}.bin").write_bytes(b"x" * size)


def _tree_with_old_and_new(tree: DataTree) -> None:
    tree.data.create()
    for day in ("2026-12-01", "2026-12-07"):
        _files(tree.model_dir(day) / "weights", 3)
        (tree.model_dir(day) / "weights" / "last.pt").write_bytes(b"c" * 50)
        dataset = tree.dataset_dir(day) / "train" / "labels"
        dataset.mkdir(parents=True)
        (tree.data.labels / f"{day}.txt").write_text("0 0.5 0.5 0.1 0.1\n")
        (dataset / f"{day}.txt").hardlink_to(tree.data.labels / f"{day}.txt")


def test_the_plan_is_carried_out_and_counted_and_a_dry_run_touches_nothing(tree):
    _tree_with_old_and_new(tree)
    decisions = plan(tree, TODAY, KEEP, Facts())
    dry = carry_out(tree, decisions, dry_run=True)
    assert dry.removed == {MODEL: [1, 350], CHECKPOINTS: [1, 50], DATASET: [1, 0]}
    assert set(dated_folders(tree.models)) == {"2026-12-01", "2026-12-07"}  # all still there

    done = carry_out(tree, decisions, dry_run=False)
    assert done.removed == dry.removed and done.skipped == []
    assert set(dated_folders(tree.models)) == set(dated_folders(tree.datasets)) == {"2026-12-07"}
    assert not (tree.model_dir("2026-12-07") / "weights" / "last.pt").exists()
    assert (tree.model_dir("2026-12-07") / "weights" / "f00000.bin").exists()
    # The dataset held hard links: the annotators' files are untouched.
    assert (tree.data.labels / "2026-12-01.txt").read_text() == "0 0.5 0.5 0.1 0.1\n"


def test_a_model_promoted_after_the_plan_is_kept(tree):
    _tree_with_old_and_new(tree)
    decisions = plan(tree, TODAY, KEEP, Facts())
    old = tree.model_dir("2026-12-01") / "weights" / "f00000.bin"
    publish_pair([(old, tree.champion)], "2026-12-01", force=True)  # an operator's rollback
    outcome = carry_out(tree, decisions, dry_run=False)
    assert outcome.skipped == ["azaion-2026-12-01: became the champion after the plan"]
    assert "2026-12-01" in dated_folders(tree.models)


_REMOVE = (
    "import sys; from pathlib import Path; "
    "from azaion_assets.lib.housekeeping.pruning import remove; remove(Path(sys.argv[1]))"
)


def test_a_removal_killed_at_any_moment_leaves_the_folder_whole_or_out_of_sight(tree):
    reference = tree.model_dir("2026-10-01")
    _files(reference, 5000, size=10)
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", _REMOVE, str(reference)], check=True)
    duration = time.monotonic() - started  # the interpreter's start, then the removal
    assert not reference.exists()
    rng = random.Random(7)
    interrupted = 0
    for attempt in range(6):
        day = f"2026-11-{attempt + 1:02d}"
        folder = tree.model_dir(day)
        _files(folder, 5000, size=10)
        child = subprocess.Popen([sys.executable, "-c", _REMOVE, str(folder)])
        time.sleep(rng.uniform(0.5, 0.95) * duration)
        child.send_signal(signal.SIGKILL)
        child.wait()
        interrupted += child.returncode == -signal.SIGKILL
        if day in dated_folders(tree.models):  # killed before the rename: whole
            assert len(list(folder.iterdir())) == 5000
        assert not (tree.models / f"{PRUNED}{folder.name}").exists() or day not in dated_folders(
            tree.models
        )
    assert interrupted >= 2
    sweep(tree)  # what the next run does first
    assert not list(tree.models.glob(f"{PRUNED}*"))
