"""Score a detector as shipped: its ONNX file, in ONNX Runtime, with the project's preprocessing.

The champion gate compares models on this score, because ``YOLO(.pt).val()`` measures another
artefact: the PyTorch weights at the training size, on rect batches, after the validator's own
resize (``ceil`` where the predictor rounds). On one run the shipped ONNX scored test mAP50-95
0.090 where that validation recorded 0.101. Here every test image goes through
``preprocess`` at the size read from the ONNX file, the rows are mapped back to original
pixels, and the matching and AP are Ultralytics' own (``DetectionValidator.match_predictions``,
``DetMetrics``), so the figures mean what Ultralytics' figures mean, on the file the edge runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from azaion_assets.lib.evaluation.frame_errors import Frame, frame
from azaion_assets.lib.evaluation.preprocess import onnx_input_size, prepare

# Ultralytics validates with conf=0.001: AP integrates over the whole precision-recall curve.
MIN_SCORE = 0.001


@dataclass(frozen=True)
class Score:
    map50: float
    map50_95: float
    images: int
    imgsz: int | None = None  # the input size of the scored ONNX
    per_class: list[dict[str, Any]] = field(default_factory=list)  # slot, name, ap50, ap50_95


def read_targets(label: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A YOLO label as (classes, x1 y1 x2 y2 boxes in image pixels); no file means no boxes."""
    rows = (
        [line.split() for line in label.read_text("utf-8-sig").splitlines() if line.strip()]
        if label.is_file()
        else []
    )
    data = np.array(rows, dtype=np.float64).reshape(-1, 5)
    cx, cy, w, h = data[:, 1] * width, data[:, 2] * height, data[:, 3] * width, data[:, 4] * height
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return data[:, 0], boxes


def session(onnx_path: Path):
    """An ONNX Runtime session on the best provider present (CUDA on a GPU host)."""
    import onnxruntime as ort

    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    providers = [p for p in wanted if p in ort.get_available_providers()]
    return ort.InferenceSession(str(onnx_path), providers=providers)


@dataclass(frozen=True)
class Scored:
    """A score with what the pictures need: each frame as the edge shows it (boxes above
    ``threshold``), the precision-recall curve at IoU 0.5 (the mean over the classes present,
    Ultralytics' "all classes"), and the confusion matrix at ``threshold`` ([predicted, true],
    background last, Ultralytics' ``ConfusionMatrix``)."""

    score: Score
    threshold: float
    frames: list[Frame]
    recall: np.ndarray
    precision: np.ndarray
    confusion: np.ndarray


def score_onnx(
    onnx_path: Path, images: list[Path], labels_dir: Path, names: dict[int, str]
) -> Score:
    """mAP50 and mAP50-95 of ``onnx_path`` on ``images`` (labels in ``labels_dir``)."""
    return score_frames(onnx_path, images, labels_dir, names).score


def score_frames(
    onnx_path: Path,
    images: list[Path],
    labels_dir: Path,
    names: dict[int, str],
    threshold: float = 0.25,
) -> Scored:
    """``score_onnx`` in the same pass as the frames, curve and confusion at ``threshold``."""
    import torch
    from ultralytics.models.yolo.detect.val import DetectionValidator
    from ultralytics.utils.metrics import ConfusionMatrix, DetMetrics, box_iou

    runner = session(onnx_path)
    input_name, size = runner.get_inputs()[0].name, onnx_input_size(runner)
    matcher = DetectionValidator(args={"conf": MIN_SCORE, "plots": False})
    metrics = DetMetrics(names=dict(names))
    confusion = ConfusionMatrix(names={i: str(i) for i in range(max(names, default=-1) + 1)})
    frames = []
    for path in images:
        x, box = prepare(path, size)
        rows = np.asarray(runner.run(None, {input_name: x})[0])[0]
        rows = rows[rows[:, 4] > MIN_SCORE]  # as Ultralytics filters end-to-end rows
        rows = rows[np.argsort(-rows[:, 4], kind="stable")]  # matching wants best first
        pred_boxes = box.to_original(rows[:, :4])
        classes, targets = read_targets(labels_dir / f"{path.stem}.txt", box.orig_w, box.orig_h)
        if len(classes) and len(rows):
            iou = box_iou(torch.from_numpy(targets).float(), torch.from_numpy(pred_boxes).float())
            tp = matcher.match_predictions(
                torch.from_numpy(rows[:, 5]), torch.from_numpy(classes), iou
            ).numpy()
        else:
            tp = np.zeros((len(rows), 10), dtype=bool)
        metrics.update_stats(
            {
                "tp": tp,
                "target_cls": classes,
                "target_img": np.unique(classes),
                "conf": rows[:, 4],
                "pred_cls": rows[:, 5],
                "im_name": path.name,
            }
        )
        shown = np.column_stack([pred_boxes, rows[:, 4:6]]).reshape(-1, 6)
        detections = {"bboxes": shown[:, :4], "conf": shown[:, 4], "cls": shown[:, 5]}
        truth = {"bboxes": targets, "cls": classes}
        confusion.process_batch(_tensors(detections), _tensors(truth), conf=threshold)
        frames.append(frame(path, box.orig_w, box.orig_h, classes, targets, shown, threshold))
    metrics.process(plot=False)
    box_metrics = metrics.box
    per_class = [
        {
            "slot": int(c),
            "name": names.get(int(c), f"Class-{int(c)}"),
            "ap50": round(float(box_metrics.ap50[i]), 4),
            "ap50_95": round(float(box_metrics.ap[i]), 4),
        }
        for i, c in enumerate(box_metrics.ap_class_index)
    ]
    score = Score(
        map50=round(float(box_metrics.map50), 4),
        map50_95=round(float(box_metrics.map), 4),
        images=len(images),
        imgsz=size,
        per_class=per_class,
    )
    recall = np.asarray(getattr(box_metrics, "px", np.linspace(0, 1, 1000)), dtype=np.float64)
    per_class_precision = np.asarray(getattr(box_metrics, "prec_values", []), dtype=np.float64)
    precision = (
        per_class_precision.reshape(-1, len(recall)).mean(axis=0)
        if per_class_precision.size
        else np.zeros(len(recall))  # nothing to score: no curve
    )
    return Scored(score, threshold, frames, recall, precision, confusion.matrix)


def _tensors(arrays: dict[str, np.ndarray]) -> dict:
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v)).float() for k, v in arrays.items()}
