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

Parity itself is ``parity``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from azaion_assets.lib.evaluation.parity import Parity
from azaion_assets.lib.fsio.atomic import atomic_write_text, fsync_dir
from azaion_assets.lib.fsio.digest import sha256

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
