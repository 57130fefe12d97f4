"""ONNX export of the detector, and parity of the export against PyTorch.

We export YOLO26 in its NMS-free end-to-end form (``nms=False``): one output ``(1, 300, 6)`` of
``[x1, y1, x2, y2, score, class]`` rows in input pixels, best first. Edge devices then need no
NMS of their own, and the ONNX graph is the whole detector. The alternative, the one-to-many head
``(1, 4 + nc, anchors)``, would push NMS and its thresholds onto every consumer. Training
validates the same head (see ``training.train``), so the reported mAP is the shipped model's.

Parity compares both runtimes on the same letterboxed images. Tiny models produce tied scores,
so rows come out in different orders; the comparison therefore matches boxes by class and IoU
instead of by row. Three figures must hold: every box above the confidence threshold has a
partner, the sorted score vectors agree, and nearly all of the 300 rows (boxes included) agree
order-free, which still tests an untrained model whose scores all sit below the threshold.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

LETTERBOX_FILL = 114


def export_onnx(weights: Path, imgsz: int) -> Path:
    """Export ``weights`` to ONNX beside them and return the ``.onnx`` path."""
    from ultralytics import YOLO

    out = YOLO(str(weights)).export(
        format="onnx", imgsz=imgsz, nms=False, dynamic=False, simplify=True, device="cpu"
    )
    return Path(out)


EXPORT_RECORD = "export.json"


def write_export_record(model_dir: Path, onnx_path: Path, parity: Parity) -> Path:
    """What a promotion needs to know later: where the export is and whether it passed parity."""
    from azaion_assets.core.atomic import atomic_write_text

    record = {"onnx": str(onnx_path), "parity_passed": parity.passed, "parity": parity.as_dict()}
    return atomic_write_text(model_dir / EXPORT_RECORD, json.dumps(record, indent=2))


def read_export_record(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / EXPORT_RECORD
    return json.loads(path.read_text("utf-8")) if path.is_file() else None


def describe_onnx(path: Path) -> dict[str, Any]:
    """Opset, inputs and outputs of an ONNX file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def shape(value) -> list[int | str]:
        dims = value.type.tensor_type.shape.dim
        return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]

    return {
        "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        "inputs": {i.name: shape(i) for i in model.graph.input},
        "outputs": {o.name: shape(o) for o in model.graph.output},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
    }


def letterbox(image_path: Path, size: int) -> np.ndarray:
    """Resize keeping aspect ratio, pad to ``size`` square; return a (1, 3, size, size) float32."""
    from PIL import Image

    with Image.open(image_path) as img:
        rgb = img.convert("RGB")
        scale = min(size / rgb.width, size / rgb.height)
        new_w, new_h = round(rgb.width * scale), round(rgb.height * scale)
        resized = rgb.resize((new_w, new_h), Image.Resampling.BILINEAR)
    canvas = np.full((size, size, 3), LETTERBOX_FILL, dtype=np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = np.asarray(resized)
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class Parity:
    images: int
    boxes_reference: int
    boxes_matched: int
    unmatched: int
    max_score_diff: float
    max_sorted_score_diff: float
    min_matched_iou: float
    row_agreement: float
    onnx_ms: float
    torch_ms: float
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _unmatched(ref: np.ndarray, other: np.ndarray, conf: float, tol: float, min_iou: float):
    """Boxes of ``ref`` above ``conf`` with no same-class partner in ``other`` (above conf - tol).

    Returns (count unmatched, matched count, worst score diff, worst IoU among matches).
    """
    candidates = other[other[:, 4] >= conf - tol]
    used = np.zeros(len(candidates), dtype=bool)
    missing = matched = 0
    worst_diff, worst_iou = 0.0, 1.0
    for row in ref[ref[:, 4] >= conf]:
        best, best_iou = -1, min_iou
        for j, cand in enumerate(candidates):
            if used[j] or int(cand[5]) != int(row[5]):
                continue
            overlap = iou(row[:4], cand[:4])
            if overlap >= best_iou:
                best, best_iou = j, overlap
        if best < 0:
            missing += 1
            continue
        used[best] = True
        matched += 1
        worst_diff = max(worst_diff, abs(float(row[4]) - float(candidates[best][4])))
        worst_iou = min(worst_iou, best_iou)
    return missing, matched, worst_diff, worst_iou


def row_agreement(a: np.ndarray, b: np.ndarray, score_tol: float, box_tol_px: float) -> float:
    """Share of the rows of ``a`` that have a partner in ``b``: same class, close score, and a
    box within ``box_tol_px`` on every edge. Order-free, and it covers all rows, so it checks the
    box geometry even when no score clears the threshold (an untrained model's scores sit at the
    bias value and tie).
    """
    if len(a) == 0:
        return 1.0
    used = np.zeros(len(b), dtype=bool)
    agreed = 0
    for row in a[np.argsort(-a[:, 4], kind="stable")]:
        close = ~used & (b[:, 5] == row[5]) & (np.abs(b[:, 4] - row[4]) <= score_tol)
        idx = np.flatnonzero(close)
        if idx.size == 0:
            continue
        dist = np.abs(b[idx, :4] - row[:4]).max(axis=1)
        best = int(dist.argmin())
        if dist[best] <= box_tol_px:
            used[idx[best]] = True
            agreed += 1
    return agreed / len(a)


def check_parity(
    weights: Path,
    onnx_path: Path,
    images: list[Path],
    imgsz: int,
    conf: float,
    score_tol: float,
    min_iou: float,
    min_row_agreement: float = 0.95,
    box_tol_px: float = 1.0,
) -> Parity:
    """Run PyTorch and ONNX Runtime on the same inputs and compare their detections."""
    import onnxruntime as ort
    import torch
    from ultralytics import YOLO

    module = YOLO(str(weights)).model
    assert isinstance(module, torch.nn.Module)
    module = module.float().eval()
    if hasattr(module, "end2end"):
        module.end2end = True  # type: ignore[attr-defined]  # the form we export
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    totals = {"ref": 0, "matched": 0, "unmatched": 0}
    worst_diff = worst_sorted = 0.0
    worst_iou = 1.0
    agreement = 1.0
    onnx_times, torch_times = [], []
    for path in images:
        x = letterbox(path, imgsz)
        t0 = time.perf_counter()
        onnx_out = np.asarray(session.run(None, {input_name: x})[0])[0]
        t1 = time.perf_counter()
        with torch.inference_mode():
            out = module(torch.from_numpy(x))
        t2 = time.perf_counter()
        torch_out = (out[0] if isinstance(out, (tuple, list)) else out)[0].numpy()
        onnx_times.append(t1 - t0)
        torch_times.append(t2 - t1)
        worst_sorted = max(
            worst_sorted,
            float(np.max(np.abs(np.sort(onnx_out[:, 4]) - np.sort(torch_out[:, 4])))),
        )
        agreement = min(agreement, row_agreement(onnx_out, torch_out, score_tol, box_tol_px))
        for ref, other in ((torch_out, onnx_out), (onnx_out, torch_out)):
            missing, matched, diff, low_iou = _unmatched(ref, other, conf, score_tol, min_iou)
            totals["unmatched"] += missing
            if ref is torch_out:
                totals["ref"] += int((ref[:, 4] >= conf).sum())
                totals["matched"] += matched
            worst_diff, worst_iou = max(worst_diff, diff), min(worst_iou, low_iou)
    ok = (
        bool(images)
        and totals["unmatched"] == 0
        and max(worst_diff, worst_sorted) <= score_tol
        and agreement >= min_row_agreement
    )
    return Parity(
        images=len(images),
        boxes_reference=totals["ref"],
        boxes_matched=totals["matched"],
        unmatched=totals["unmatched"],
        max_score_diff=round(worst_diff, 6),
        max_sorted_score_diff=round(worst_sorted, 6),
        min_matched_iou=round(worst_iou, 4),
        row_agreement=round(agreement, 4),
        onnx_ms=round(_median_ms(onnx_times), 2),
        torch_ms=round(_median_ms(torch_times), 2),
        passed=ok,
    )


def _median_ms(times: list[float]) -> float:
    # The first call pays for lazy initialisation; leave it out when there is more than one.
    samples = times[1:] if len(times) > 1 else times
    return statistics.median(samples) * 1000 if samples else 0.0
