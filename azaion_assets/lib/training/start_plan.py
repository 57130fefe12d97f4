"""How a training attempt starts: fresh, resumed from a checkpoint, or already finished.

Decided from what earlier attempts left on disk (the staging folder, the run folder and their
resume records), so a retry never trains again what is done, nor resumes another training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from azaion_assets.lib.fsio.digest import sha256
from azaion_assets.lib.training.checkpoints import (
    Checkpoint,
    find_resumable,
    load_checkpoint,
    resume_mismatch,
)
from azaion_assets.lib.training.train_params import TrainParams


@dataclass(frozen=True)
class Start:
    """How a training begins: fresh, resumed from a checkpoint, or already finished."""

    mode: str  # "fresh" | "resume" | "finished" (in staging) | "trained" (already in run_dir)
    reason: str
    checkpoint: Checkpoint | None = None


def training_identity(params: TrainParams, data_version: str) -> dict[str, Any]:
    """What a checkpoint must share with this training to be resumed by it.

    Device and dataloader workers may change between attempts (a retry can land on another
    GPU); everything that shapes the weights may not, the start weights' sha256 included: a
    retry after a promotion replaced the champion does not resume a fine-tuning of the old one.
    """
    fixed = {k: v for k, v in asdict(params).items() if k not in ("device", "workers")}
    return {**fixed, "data_version": data_version}


def _final(weights: Path, epochs: int) -> bool:
    """``last.pt`` says every epoch was trained (stripped by Ultralytics, or not yet)."""
    last = load_checkpoint(weights / "last.pt") if (weights / "last.pt").is_file() else None
    return last is not None and (
        last.get("optimizer") is None or last.get("epoch", -1) >= epochs - 1
    )


def plan_start(
    staging: Path, params: TrainParams, identity: dict[str, Any], run_dir: Path | None = None
) -> Start:
    """Decide how this attempt starts, from what earlier attempts left.

    An attempt in progress (``staging``) comes first: resume it, or finish it if it trained
    every epoch. Otherwise, if ``run_dir`` already holds this very training (same dataset
    version and parameters, every epoch done), it is reused rather than trained again: that is
    where a step killed after the swap, during evaluation or promotion, left its work.
    """
    weights = staging / "weights"
    if not weights.is_dir():
        if run_dir is not None and _trained(run_dir, params, identity):
            return Start("trained", f"{run_dir.name} already holds this training: reusing it")
        return Start("fresh", "no earlier attempt: training from the start")
    mismatch = resume_mismatch(staging, identity)
    if mismatch is not None:
        return Start("fresh", f"an earlier attempt exists but {mismatch}: training from the start")
    if _final(weights, params.epochs):
        return Start("finished", "an earlier attempt finished training: validating its best.pt")
    found = find_resumable(weights, params.epochs)
    if found is None:
        return Start(
            "fresh", "an earlier attempt left no resumable checkpoint: training from the start"
        )
    return Start(
        "resume",
        f"resuming from {found.path.name} after epoch {found.epoch + 1}/{params.epochs}",
        found,
    )


def _trained(run_dir: Path, params: TrainParams, identity: dict[str, Any]) -> bool:
    weights = run_dir / "weights"
    return (
        resume_mismatch(run_dir, identity) is None
        and _final(weights, params.epochs)
        and load_checkpoint(weights / "best.pt") is not None
    )


class StartWeightsChanged(RuntimeError):
    """The start weights are not the bytes the training was planned with (a promotion or a
    retraining replaced them meanwhile); a retry plans again."""


def verify_start_weights(weights: str, expected: str | None) -> None:
    """Raise ``StartWeightsChanged`` unless ``weights`` still hash to ``expected``: what the
    training identity names is what training loads."""
    if expected is None:
        return
    found = sha256(Path(weights)) if Path(weights).is_file() else "missing"
    if found != expected:
        raise StartWeightsChanged(
            f"start weights {weights} changed since this training was planned (sha256 "
            f"{expected[:12]}, now {found[:12]}): a retry plans the start again"
        )
