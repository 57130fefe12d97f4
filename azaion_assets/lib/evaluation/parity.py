"""Parity of an ONNX export against the PyTorch weights it came from.

Both runtimes run on the same images through ``preprocess``. Tiny models produce tied
scores, so rows come out in different orders; the comparison matches boxes by class and IoU
instead of by row. Three figures must hold: every compared box has a partner, the sorted score
vectors agree, and nearly all of the 300 rows (boxes included) agree order-free. When too few
boxes clear the threshold (a barely trained model), each image's top rows are compared instead,
and ``Parity.compared`` says so: a parity check cannot pass hollow.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from azaion_assets.lib.evaluation.preprocess import onnx_input_size, prepare
from azaion_assets.lib.text import plural


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class Parity:
    images: int
    imgsz: int  # read from the ONNX file
    compared: str  # which comparison decided: boxes above the threshold, or each image's top rows
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
    conf: float,
    score_tol: float,
    min_iou: float,
    min_boxes: int = 10,
    top_k: int = 10,
    min_row_agreement: float = 0.95,
    box_tol_px: float = 1.0,
) -> Parity:
    """Run PyTorch and ONNX Runtime on the same inputs and compare their detections.

    The boxes above ``conf`` decide when PyTorch finds at least ``min_boxes`` of them over all
    images; otherwise each image's ``top_k`` rows do (a threshold at the k-th score).
    """
    import onnxruntime as ort
    import torch
    from ultralytics import YOLO

    module = YOLO(str(weights)).model
    assert isinstance(module, torch.nn.Module)
    module = module.float().eval()
    if hasattr(module, "end2end"):
        module.end2end = True  # type: ignore[attr-defined]  # the form we export
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name, imgsz = session.get_inputs()[0].name, onnx_input_size(session)

    outputs: list[tuple[np.ndarray, np.ndarray]] = []
    onnx_times, torch_times = [], []
    for path in images:
        x, _ = prepare(path, imgsz)
        t0 = time.perf_counter()
        onnx_out = np.asarray(session.run(None, {input_name: x})[0])[0]
        t1 = time.perf_counter()
        with torch.inference_mode():
            out = module(torch.from_numpy(x))
        t2 = time.perf_counter()
        torch_out = (out[0] if isinstance(out, (tuple, list)) else out)[0].numpy()
        onnx_times.append(t1 - t0)
        torch_times.append(t2 - t1)
        outputs.append((torch_out, onnx_out))

    above = sum(int((t[:, 4] >= conf).sum()) for t, _ in outputs)
    by_threshold = above >= min_boxes
    compared = (
        f"boxes scoring at least {conf} ({above} in PyTorch)"
        if by_threshold
        else f"top {plural(top_k, 'row')} of each image (only {plural(above, 'box', 'boxes')} "
        f"scored at least {conf}, fewer than {min_boxes})"
    )
    totals = {"ref": 0, "matched": 0, "unmatched": 0}
    worst_diff = worst_sorted = 0.0
    worst_iou = 1.0
    agreement = 1.0
    for torch_out, onnx_out in outputs:
        worst_sorted = max(
            worst_sorted,
            float(np.max(np.abs(np.sort(onnx_out[:, 4]) - np.sort(torch_out[:, 4])))),
        )
        agreement = min(agreement, row_agreement(onnx_out, torch_out, score_tol, box_tol_px))
        for ref, other in ((torch_out, onnx_out), (onnx_out, torch_out)):
            cut = conf if by_threshold else _kth_score(ref, top_k)
            missing, matched, diff, low_iou = _unmatched(ref, other, cut, score_tol, min_iou)
            totals["unmatched"] += missing
            if ref is torch_out:
                totals["ref"] += int((ref[:, 4] >= cut).sum())
                totals["matched"] += matched
            worst_diff, worst_iou = max(worst_diff, diff), min(worst_iou, low_iou)
    ok = (
        bool(images)
        and totals["ref"] > 0
        and totals["unmatched"] == 0
        and max(worst_diff, worst_sorted) <= score_tol
        and agreement >= min_row_agreement
    )
    return Parity(
        images=len(images),
        imgsz=imgsz,
        compared=compared,
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


def _kth_score(rows: np.ndarray, k: int) -> float:
    """The score of the k-th best row: a threshold that keeps the top k (and any ties)."""
    scores = np.sort(rows[:, 4])[::-1]
    return float(scores[min(k, len(scores)) - 1]) if len(scores) else 1.0


def _median_ms(times: list[float]) -> float:
    # The first call pays for lazy initialisation; leave it out when there is more than one.
    samples = times[1:] if len(times) > 1 else times
    return statistics.median(samples) * 1000 if samples else 0.0
