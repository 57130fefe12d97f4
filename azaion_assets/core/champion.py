"""Champion/challenger: a new model replaces ``models/azaion.pt`` only if it is as good.

Scores are only comparable on the same images, so both models are evaluated on the new
dataset's test split, which neither trained on: splits are stable by name, so a test image of
today was a test image (or absent) in every earlier dataset too. The challenger wins when its
mAP50-95 is at least the champion's minus RETRAIN_PROMOTION_TOLERANCE. If the champion cannot
be evaluated on the new split (a different class list, a damaged file), nothing is promoted
automatically; the reason is recorded and an operator can promote by hand.

Each trained partition keeps its verdict in ``models/azaion-YYYY-MM-DD/evaluation.json``. The
promotion itself waits for the ONNX export to pass parity (``onnx_model``), because the champion
is always a pair: ``azaion.pt`` and the ``azaion.onnx`` exported from it (``promote``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from azaion_assets.core.atomic import atomic_write_text
from azaion_assets.core.datatree import DataTree
from azaion_assets.core.export import read_export_record
from azaion_assets.core.forming import split_images
from azaion_assets.core.publish import NO_CHAMPION, Published, publish_pair

EVALUATION = "evaluation.json"
TEST_SPLIT = "test"


@dataclass(frozen=True)
class Score:
    map50: float
    map50_95: float
    images: int


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str
    challenger: Score
    champion: Score | None
    champion_partition: str | None  # the partition azaion.pt held when judged
    tolerance: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    weights: Path, data_yaml: Path, imgsz: int, batch: int, device: str, workdir: Path
) -> Score:
    """mAP of ``weights`` on the test split of ``data_yaml``, on the NMS-free head we ship."""
    from ultralytics import YOLO

    metrics: Any = YOLO(str(weights)).val(
        data=str(data_yaml),
        split=TEST_SPLIT,
        nms=False,  # the one-to-one head without NMS: what training validated and we export
        imgsz=imgsz,
        batch=batch,
        device=device,
        plots=False,
        verbose=False,
        project=str(workdir),
        name=f"eval-{Path(weights).stem}",
        exist_ok=True,
    )
    return Score(
        map50=round(float(metrics.box.map50), 4),
        map50_95=round(float(metrics.box.map), 4),
        images=len(split_images(Path(data_yaml).parent, TEST_SPLIT)),
    )


def judge(
    challenger: Score,
    champion: Score | None,
    champion_partition: str | None,
    tolerance: float,
    champion_error: str | None = None,
) -> Verdict:
    """Promote when there is no champion, or when the challenger is at least as good."""

    def verdict(promote: bool, reason: str) -> Verdict:
        return Verdict(promote, reason, challenger, champion, champion_partition, tolerance)

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
        f"{champion.map50_95:.4f} on the same {challenger.images} test images"
    )
    if margin >= -tolerance:
        return verdict(True, f"promoted: {figures} (tolerance {tolerance})")
    return verdict(False, f"kept as challenger: {figures} (tolerance {tolerance})")


class NotPromotable(RuntimeError):
    """The partition has no model, or no ONNX export that passed parity, to publish as a pair."""


def promote(
    tree: DataTree,
    partition: str,
    extra: dict[str, Any],
    expected: str | None = None,
    force: bool = False,
) -> Published:
    """Publish a partition's ``best.pt`` and its ONNX export as the champion pair.

    ``expected``: the champion the promotion was decided against (``NO_CHAMPION`` if none), so
    a champion that changed meanwhile is not replaced; ``force`` for an operator's promotion.
    """
    model_dir = tree.model_dir(partition)
    weights = model_dir / "weights" / "best.pt"
    if not weights.is_file():
        raise NotPromotable(f"no trained model for {partition}: {weights} is missing")
    export = read_export_record(model_dir)
    if export is None or not export["parity_passed"] or not Path(export["onnx"]).is_file():
        raise NotPromotable(
            f"{partition} has no ONNX export that passed parity; materialise onnx_model for "
            "it first (the champion is always a .pt with its .onnx)"
        )
    files = [(Path(export["onnx"]), tree.champion_onnx), (weights, tree.champion)]
    return publish_pair(files, partition, extra, expected=expected, force=force)


def expected_champion(evaluation: dict[str, Any]) -> str:
    return evaluation.get("champion_partition") or NO_CHAMPION


def write_evaluation(model_dir: Path, verdict: Verdict) -> Path:
    return atomic_write_text(model_dir / EVALUATION, json.dumps(verdict.as_dict(), indent=2))


def read_evaluation(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / EVALUATION
    return json.loads(path.read_text("utf-8")) if path.is_file() else None
