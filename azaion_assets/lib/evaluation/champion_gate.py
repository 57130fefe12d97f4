"""Champion/challenger: a new model replaces ``models/azaion.pt`` only if it is as good.

Both models are judged as shipped: their ONNX files, scored by ``onnx_eval`` on the new
dataset's test split, which neither trained on (a split, once assigned, never changes). The
challenger wins when its mAP50-95 is at least the champion's minus RETRAIN_PROMOTION_TOLERANCE,
and never when it is below RETRAIN_MIN_TEST_MAP50_95, not even the first model. If the champion
cannot be scored on the new split (a different class list, a damaged file), nothing is promoted
automatically; the reason is recorded and an operator can promote by hand.

Each trained partition keeps its verdict in ``models/azaion-YYYY-MM-DD/evaluation.json``;
``champion.promotion`` applies it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from azaion_assets.lib.dataset.formed_dataset import split_images
from azaion_assets.lib.evaluation.onnx_eval import Score, Scored, score_frames
from azaion_assets.lib.fsio.atomic import atomic_write_text
from azaion_assets.lib.text import plural

EVALUATION = "evaluation.json"
TEST_SPLIT = "test"


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str
    challenger: Score
    champion: Score | None
    champion_partition: str | None  # the partition azaion.pt held when judged
    tolerance: float
    floor: float = 0.0  # the least test mAP50-95 a champion may have

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(onnx_path: Path, dataset_dir: Path, names: dict[int, str]) -> Score:
    """mAP of the ONNX file as shipped on the test split of a formed dataset."""
    return evaluate_frames(onnx_path, dataset_dir, names).score


def evaluate_frames(
    onnx_path: Path, dataset_dir: Path, names: dict[int, str], threshold: float = 0.25
) -> Scored:
    """``evaluate``, with each frame as the edge shows it at ``threshold`` (the pictures)."""
    images = split_images(dataset_dir, TEST_SPLIT)
    labels = Path(dataset_dir) / TEST_SPLIT / "labels"
    return score_frames(onnx_path, images, labels, names, threshold)


def judge(
    challenger: Score,
    champion: Score | None,
    champion_partition: str | None,
    tolerance: float,
    floor: float = 0.0,
    champion_error: str | None = None,
) -> Verdict:
    """Promote a challenger above the floor when there is no champion, or when it is at least
    as good as the champion."""

    def verdict(promote: bool, reason: str) -> Verdict:
        return Verdict(promote, reason, challenger, champion, champion_partition, tolerance, floor)

    if challenger.map50_95 < floor:
        return verdict(
            False,
            f"kept as challenger: test mAP50-95 {challenger.map50_95:.4f} is below the quality "
            f"floor {floor} (RETRAIN_MIN_TEST_MAP50_95)",
        )
    if champion_partition is None:
        return verdict(True, "no champion yet: the first model becomes the champion")
    if champion is None:
        return verdict(
            False,
            f"champion ({champion_partition}) could not be evaluated on this test split "
            f"({champion_error}); promote by hand if this model should replace it",
        )
    # Scores carry 4 decimals; rounding keeps a margin of exactly -tolerance inclusive.
    margin = round(challenger.map50_95 - champion.map50_95, 6)
    figures = (
        f"mAP50-95 {challenger.map50_95:.4f} vs champion ({champion_partition}) "
        f"{champion.map50_95:.4f} on the same {plural(challenger.images, 'test image')}"
    )
    if margin >= -tolerance:
        return verdict(True, f"promoted: {figures} (tolerance {tolerance})")
    return verdict(False, f"kept as challenger: {figures} (tolerance {tolerance})")


def write_evaluation(model_dir: Path, verdict: Verdict) -> Path:
    return atomic_write_text(model_dir / EVALUATION, json.dumps(verdict.as_dict(), indent=2))


def read_evaluation(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / EVALUATION
    return json.loads(path.read_text("utf-8")) if path.is_file() else None
