"""The reference predictor: what ``azaion.onnx`` and ``azaion.pt`` detect, in original pixels.

``predict_onnx`` follows the model card step by step (``lib/evaluation/preprocess.py``), so its
output is what a correct edge deployment must reproduce. ``predict_pt`` runs the PyTorch weights
through Ultralytics with the arguments that make them agree with the ONNX: the export size, a square
letterbox (``rect=False``) and the end-to-end one-to-one head (``nms=False``). Ultralytics' defaults
(rectangular letterbox at the training size, one-to-many head plus NMS) give other boxes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from azaion_assets.lib.champion.card import class_names, read_card
from azaion_assets.lib.evaluation.preprocess import onnx_input_size, prepare

MAX_DET = 300


@dataclass(frozen=True)
class Detection:
    """One box in original image pixels."""

    cls: int
    name: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _detections(rows: np.ndarray, boxes: np.ndarray, names: dict[int, str]) -> list[Detection]:
    """``rows``: score and class columns; ``boxes``: x1 y1 x2 y2 in original pixels."""
    out = []
    for (score, cls), (x1, y1, x2, y2) in zip(rows.tolist(), boxes.tolist(), strict=True):
        slot = int(cls)
        out.append(Detection(slot, names.get(slot, f"Class-{slot}"), score, x1, y1, x2, y2))
    return out


def predict_onnx(
    onnx_path: Path, images: Iterable[Path], conf: float = 0.25
) -> list[list[Detection]]:
    """Run the ONNX file on the CPU as its card says; one list of detections per image."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    size = onnx_input_size(session)
    input_name = session.get_inputs()[0].name
    names = class_names(read_card(Path(onnx_path)))
    results = []
    for path in images:
        x, box = prepare(Path(path), size)
        out = np.asarray(session.run(None, {input_name: x})[0])[0]
        kept = out[out[:, 4] > conf][:MAX_DET]  # strictly greater, as Ultralytics' end2end filter
        results.append(_detections(kept[:, 4:6], box.to_original(kept[:, :4]), names))
    return results


def export_size_beside(pt_path: Path) -> int | None:
    """The export size in the card of the ONNX beside the weights (azaion.pt -> azaion.onnx)."""
    onnx_path = Path(pt_path).with_suffix(".onnx")
    card = read_card(onnx_path) if onnx_path.is_file() else None
    return int(card["export_imgsz"]) if card and "export_imgsz" in card else None


def predict_pt(
    pt_path: Path, images: Iterable[Path], conf: float = 0.25, imgsz: int | None = None
) -> list[list[Detection]]:
    """Run the PyTorch weights through Ultralytics so that they match the ONNX export.

    ``imgsz`` defaults to the export size of the card beside the weights. Call
    ``prepare_ultralytics`` before this in a process that has not imported Ultralytics yet.
    """
    from ultralytics import YOLO

    size = imgsz if imgsz is not None else export_size_beside(Path(pt_path))
    if size is None:
        raise ValueError(
            f"{pt_path}: no model card beside it ({Path(pt_path).with_suffix('.onnx').name}) "
            "to read the export size from; pass imgsz"
        )
    model = YOLO(str(pt_path))
    results = []
    for path in images:
        (result,) = model.predict(
            str(path),
            imgsz=size,
            rect=False,  # the square letterbox of the export, not the minimal rectangle
            nms=False,  # the end-to-end one-to-one head, as exported; no NMS
            conf=conf,
            max_det=MAX_DET,
            device="cpu",
            verbose=False,
        )
        boxes: Any = getattr(result, "boxes", None)  # a Results; typed as a union with Tensor
        assert boxes is not None
        rows = np.column_stack([_numpy(boxes.conf), _numpy(boxes.cls)])
        names = {int(k): str(v) for k, v in getattr(result, "names", {}).items()}
        results.append(_detections(rows.reshape(-1, 2), _numpy(boxes.xyxy).reshape(-1, 4), names))
    return results


def _numpy(value: Any) -> np.ndarray:
    return value.cpu().numpy() if hasattr(value, "cpu") else np.asarray(value)
