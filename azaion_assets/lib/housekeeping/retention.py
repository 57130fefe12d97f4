"""What housekeeping keeps and what it removes: a plan, decided from the tree and a few facts of
the instance, before anything is touched (so a dry run shows exactly what a real one would do).

Kept, with the reason the plan records:
- a dataset of the last ``KEEP_DATASETS_DAYS``, or one a kept model was trained on (a model is
  trained on its own day's dataset);
- a model of the last ``KEEP_MODELS_DAYS``, the live champion, the ``KEEP_CHAMPIONS`` champions
  before it (a rollback promotes one of them again), and every model released in the window;
- a kept model's ``release/`` parts while younger than ``KEEP_QUARANTINE_DAYS``, and always the
  live champion's (the current release);
- stream quarantine files younger than ``KEEP_QUARANTINE_DAYS``.
A kept model whose training finished loses its resumable checkpoints (``last.pt``,
``epochN.pt``): ``best.pt``, the ONNX, the records and plots stay. Nothing else is ever planned:
``data/``, ``data-seed/``, ``data_deleted/``, ``classes.json``, the split record, the ingest
state and the champion pair live outside the folders listed here, and hidden names (staging,
locks, state) are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from azaion_assets.lib.config.datatree import DATASET_PREFIX, DataTree
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.ingest.planning import quarantine_dir

DATASET, MODEL, CHECKPOINTS, RELEASE, QUARANTINE = (
    "dataset",
    "model",
    "checkpoints",
    "release parts",
    "quarantine",
)
_DAY = re.compile(rf"^{re.escape(DATASET_PREFIX)}(\d{{4}}-\d{{2}}-\d{{2}})$")
_CHECKPOINT = re.compile(r"^(last|epoch\d+)\.pt$")


@dataclass(frozen=True)
class Retention:
    """The ``KEEP_*`` settings: days of datasets, days of models, champions before the live one,
    days of release parts and quarantine."""

    datasets_days: int = 30
    models_days: int = 30
    champions: int = 3
    quarantine_days: int = 90


@dataclass(frozen=True)
class Facts:
    """What the instance knows and the tree does not: the champions, the live one first, and
    the partitions released since the models window began."""

    champions: tuple[str, ...] = ()
    released: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Decision:
    kind: str
    path: Path
    remove: bool
    reason: str
    partition: str | None = None  # the dataset's or model's day


def dated_folders(parent: Path) -> dict[str, Path]:
    """``azaion-YYYY-MM-DD`` folders under ``parent`` by day; hidden and other names skipped."""
    if not parent.is_dir():
        return {}
    found = {}
    for path in parent.iterdir():
        match = _DAY.match(path.name)
        if match and path.is_dir():
            found[match.group(1)] = path
    return dict(sorted(found.items()))


def _since(today: date, days: int) -> str:
    """The first day inside a window of ``days`` ending today."""
    return (today - timedelta(days=max(days, 1) - 1)).isoformat()


def plan(tree: DataTree, today: date, keep: Retention, facts: Facts) -> list[Decision]:
    """Every dated dataset and model, checkpoint, release folder and quarantine file housekeeping
    looks at, each kept or removed with its reason."""
    decisions = [*_models(tree, today, keep, facts)]
    kept_models = {d.partition for d in decisions if d.kind == MODEL and not d.remove}
    decisions += _datasets(tree, today, keep, kept_models)
    decisions += _quarantine(tree, today, keep)
    return decisions


def _model_reason(day: str, since: str, keep: Retention, facts: Facts) -> str | None:
    live = facts.champions[:1]
    previous = facts.champions[1 : 1 + keep.champions]
    if day in live:
        return "the live champion"
    if day in previous:
        return f"one of the {keep.champions} champions before it (KEEP_CHAMPIONS)"
    if day >= since:
        return f"trained in the last {keep.models_days} days (KEEP_MODELS_DAYS)"
    if day in facts.released:
        return "released in the models window"
    return None


def _models(tree: DataTree, today: date, keep: Retention, facts: Facts) -> list[Decision]:
    since = _since(today, keep.models_days)
    parts_since = _since(today, keep.quarantine_days)
    out = []
    for day, folder in dated_folders(tree.models).items():
        why = _model_reason(day, since, keep, facts)
        if why is None:
            gone = f"older than {since}, not a kept champion"
            out.append(Decision(MODEL, folder, True, gone, day))
            continue
        out.append(Decision(MODEL, folder, False, why, day))
        for checkpoint in sorted((folder / "weights").glob("*.pt")):
            if _CHECKPOINT.match(checkpoint.name):
                out.append(Decision(CHECKPOINTS, checkpoint, True, "training finished", day))
        release = folder / "release"
        if release.is_dir() and day not in facts.champions[:1] and day < parts_since:
            out.append(Decision(RELEASE, release, True, f"older than {parts_since}", day))
    return out


def _datasets(tree: DataTree, today: date, keep: Retention, models: set) -> list[Decision]:
    since = _since(today, keep.datasets_days)
    out = []
    for day, folder in dated_folders(tree.datasets).items():
        if day >= since:
            out.append(Decision(DATASET, folder, False, f"formed since {since}", day))
        elif day in models:
            out.append(Decision(DATASET, folder, False, "a kept model was trained on it", day))
        else:
            out.append(Decision(DATASET, folder, True, f"older than {since}, no kept model", day))
    return out


def _quarantine(tree: DataTree, today: date, keep: Retention) -> list[Decision]:
    folder = quarantine_dir(tree)  # the ingest's quarantine of undecodable messages
    if not folder.is_dir():
        return []
    since = _since(today, keep.quarantine_days)
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        day = date.fromtimestamp(path.stat().st_mtime).isoformat()
        if day < since:
            out.append(Decision(QUARANTINE, path, True, f"quarantined before {since}"))
    return out


def retention_of(settings: Settings) -> Retention:
    return Retention(
        datasets_days=settings.keep_datasets_days,
        models_days=settings.keep_models_days,
        champions=settings.keep_champions,
        quarantine_days=settings.keep_quarantine_days,
    )
