"""What a training starts from: the base model (a full retraining) or the champion (a
fine-tuning), chosen by TRAINING_START, with a one-line reason for the operator.

A fine-tuning trains TRAINING_FINETUNE_EPOCHS from the champion's weights rather than
TRAINING_EPOCHS from the base: a fraction of the time, for a model that already knows most of
the data. A full retraining from the base is still chosen

- every TRAINING_FULL_EVERY-th training, so that what a chain of fine-tunings accumulates (a
  drift towards recent days, a schedule that never restarts) does not compound for ever;
- when the class table changed: the champion's head would carry a slot's old meaning;
- when there is no champion, or its weights cannot be read.

The champion's class table is read from its weights (the names Ultralytics stores in the
checkpoint): they are the very bytes a fine-tuning loads, so they cannot disagree with them.
The champion dataset's ``data.yaml`` can be gone or formed again, and the model card lives in
another file, which a champion deployed before cards existed does not carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from azaion_assets.lib.champion.weights import champion_weights, weights_names
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.fields import TrainingStart
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.fsio.digest import sha256
from azaion_assets.lib.labels.classes import load_classes, slot_names
from azaion_assets.lib.text import plural
from azaion_assets.lib.training.base_model import resolve_base_model

BASE: TrainingStart = "base"
CHAMPION: TrainingStart = "champion"
NO_WEIGHTS = "none: an architecture YAML starts from random weights"
_SHOWN_CHANGES = 3  # slots named in the reason; a renamed class changes three (its modes)


@dataclass(frozen=True)
class StartWeights:
    kind: TrainingStart  # BASE | CHAMPION
    weights: str  # what YOLO() loads: a .pt path, or an architecture YAML name
    epochs: int
    sha256: str | None  # of the weights file; None for an architecture YAML (no weights)
    reason: str
    since_full: int  # fine-tunings since the last full retraining, not counting this one


def choose_start(
    settings: Settings,
    tree: DataTree,
    since_full: int,
    model: str | None = None,
    epochs: int | None = None,
) -> StartWeights:
    """How this training starts. ``since_full``: fine-tunings since the last full retraining;
    ``model``, ``epochs``: the launchpad's, where set (a model named there is a base start).
    A champion start reads the champion's weights, which imports Ultralytics:
    ``prepare_ultralytics`` first."""

    def full(why: str) -> StartWeights:
        base = resolve_base_model(model or settings.training_model, tree.models)
        digest = sha256(Path(base)) if base.endswith(".pt") else None
        reason = f"full retraining from {Path(base).name}: {why}"
        chosen = epochs or settings.training_epochs
        return StartWeights(BASE, base, chosen, digest, reason, since_full)

    every = settings.training_full_every
    if model is not None:
        return full("the launchpad named the model")
    if settings.training_start == BASE:
        return full("TRAINING_START=base")
    if every == 1:
        return full("TRAINING_FULL_EVERY=1: every training is full")
    if every and since_full + 1 >= every:
        done = plural(since_full, "fine-tuning")
        return full(f"{done} since the last one (TRAINING_FULL_EVERY={every})")
    champion = champion_weights(tree)
    if champion is None:
        return full("there is no champion yet")
    names = weights_names(champion.path)
    if names is None:
        return full(f"the champion's weights are unreadable ({champion.path})")
    changes = class_changes(slot_names(load_classes(tree.classes_file)), names)
    if changes:
        return full(f"the class table changed ({changes})")
    cycle = (
        f"{since_full + 1} of {every - 1} before a full retraining"
        if every
        else "TRAINING_FULL_EVERY=0: no scheduled full retraining"
    )
    return StartWeights(
        CHAMPION,
        str(champion.path),
        epochs or settings.training_finetune_epochs,
        champion.sha256,
        f"fine-tuning from champion {champion.label} ({cycle})",
        since_full,
    )


def class_changes(current: dict[int, str], champion: dict[int, str]) -> str:
    """The slots whose names differ, for the reason line; empty if none do."""
    slots = sorted(s for s in current.keys() | champion.keys() if current.get(s) != champion.get(s))
    shown = [f"slot {s}: {champion.get(s, '-')} -> {current.get(s, '-')}" for s in slots]
    more = len(slots) - _SHOWN_CHANGES
    return ", ".join(shown[:_SHOWN_CHANGES]) + (f" and {more} more" if more > 0 else "")
