"""ONNX export of the detector, and parity of the export against PyTorch.

We export YOLO26 in its NMS-free end-to-end form (``nms=False``): one output ``(1, 300, 6)`` of
``[x1, y1, x2, y2, score, class]`` rows in input pixels, best first. Edge devices then need no
NMS of their own, and the ONNX graph is the whole detector. Training validates the same head (see
``training.train``).

An export is staged: Ultralytics writes it in a private folder, parity runs on that very file,
and only a passing file is renamed into ``weights/best.onnx``, with ``export.json`` recording its
sha256, input shape and the sha256 of the weights it came from. A promotion believes an ONNX
only if both hashes still hold (``verified_export``), so a failed, interrupted or foreign export
can never become the champion.

Parity compares both runtimes on the same images through ``core.preprocess``. Tiny models
produce tied scores, so rows come out in different orders; the comparison matches boxes by class
and IoU instead of by row. When too few boxes clear the threshold (a barely trained model), it
compares each image's top rows instead, and says so, so it cannot pass hollow.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from azaion_assets.core.atomic import atomic_write_text, fsync_dir
from azaion_assets.core.preprocess import onnx_input_size, prepare
from azaion_assets.core.publish import sha256

EXPORT_RECORD = "export.json"


class ExportError(RuntimeError):
    """The partition has no export that a promotion may trust; the message says why."""


def export_onnx(weights: Path, imgsz: int) -> Path:
    """Export ``weights`` to ONNX beside them and return the ``.onnx`` path."""
    from ultralytics import YOLO

    out = YOLO(str(weights)).export(
        format="onnx", imgsz=imgsz, nms=False, dynamic=False, simplify=True, device="cpu"
    )
    return Path(out)


@contextmanager
def staged_export(weights: Path, imgsz: int) -> Iterator[Path]:
    """Export ``weights`` inside a private folder beside them; yield the staged ``.onnx``.

    The folder goes when the block ends, with whatever was not installed from it.
    """
    staging = Path(tempfile.mkdtemp(dir=weights.parent, prefix=".export-"))
    try:
        staged = staging / weights.name
        try:
            os.link(weights, staged)
        except OSError:  # a file system without hard links
            shutil.copy2(weights, staged)
        yield export_onnx(staged, imgsz)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_export(
    staged: Path, weights: Path, parity: Parity, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Rename a staged export that passed parity into place and record what it is."""
    if not parity.passed:
        raise ExportError("refusing to install an export that failed parity")
    target = weights.with_suffix(".onnx")
    info = describe_onnx(staged)
    record = {
        "onnx": str(target),
        "onnx_sha256": sha256(staged),
        "weights": str(weights),
        "weights_sha256": sha256(weights),
        "input": info["inputs"],
        "output": info["outputs"],
        "imgsz": input_size(staged),
        "parity_passed": True,
        "parity": parity.as_dict(),
        **(extra or {}),
    }
    with open(staged, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(staged, target)
    fsync_dir(target.parent)
    atomic_write_text(weights.parent.parent / EXPORT_RECORD, json.dumps(record, indent=2))
    return record


def read_export_record(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / EXPORT_RECORD
    return json.loads(path.read_text("utf-8")) if path.is_file() else None


def verified_export(model_dir: Path, weights: Path) -> Path:
    """The partition's ONNX, if its record vouches for these exact bytes and weights."""
    record = read_export_record(model_dir)
    if record is None or not record.get("parity_passed"):
        raise ExportError(f"{model_dir.name} has no ONNX export that passed parity")
    onnx_path = Path(record["onnx"])
    if "onnx_sha256" not in record:
        raise ExportError(f"{model_dir.name}: export.json predates checksums; export again")
    if not onnx_path.is_file() or sha256(onnx_path) != record["onnx_sha256"]:
        raise ExportError(
            f"{model_dir.name}: {onnx_path.name} is not the file that passed parity "
            "(missing, or its sha256 differs from export.json)"
        )
    if sha256(weights) != record["weights_sha256"]:
        raise ExportError(
            f"{model_dir.name}: {weights.name} changed since {onnx_path.name} was exported from it"
        )
    return onnx_path


def input_size(onnx_path: Path) -> int:
    """The square input size of an ONNX file, read from the file itself."""
    shape = describe_onnx(onnx_path)["inputs"]
    dims = next(iter(shape.values()))
    if len(dims) != 4 or not isinstance(dims[2], int) or dims[2] != dims[3]:
        raise ExportError(f"{onnx_path.name}: expected a fixed square input, got {dims}")
    return dims[2]


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
        else f"top {top_k} rows of each image (only {above} boxes scored at least {conf}, "
        f"fewer than {min_boxes})"
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
