"""``azaion-assets predict MODEL IMAGE...``: the detections a deployer must reproduce.

``MODEL`` is ``azaion.onnx`` (run as its model card says, see
``lib.champion.edge_predict.predict_onnx``) or ``azaion.pt`` (Ultralytics at the export size, square
letterbox, end-to-end head). Boxes are in original image pixels. Exit 2 on a usage error: a missing
or unreadable file, a model that is not ``.pt``/``.onnx``, an ``--imgsz`` the ONNX was not exported
for.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

EXIT_USAGE = 2
DEFAULT_CONF = 0.25
HEADER = f"  {'slot':>4}  {'class':<24} {'score':>6}" + "".join(
    f" {c:>8}" for c in ["x1", "y1", "x2", "y2"]
)


class UsageError(ValueError):
    pass


def _check_files(model: Path, images: list[Path]) -> list[tuple[int, int]]:
    """Fail early, naming the file; returns each image's (width, height)."""
    from azaion_assets.lib.evaluation.preprocess import read_bgr

    if model.suffix.lower() not in (".pt", ".onnx"):
        raise UsageError(f"{model}: expected a .pt or .onnx model")
    if not model.is_file():
        raise UsageError(f"{model}: no such model file")
    sizes = []
    for path in images:
        if not path.is_file():
            raise UsageError(f"{path}: no such image file")
        try:
            image = read_bgr(path)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        sizes.append((image.shape[1], image.shape[0]))
    return sizes


def _card_of(model: Path) -> dict[str, Any] | None:
    from azaion_assets.lib.champion.card import read_card

    onnx_path = model.with_suffix(".onnx")
    return read_card(onnx_path) if onnx_path.is_file() else None


def _run(args: argparse.Namespace, model: Path, images: list[Path], conf: float):
    from azaion_assets.lib.champion import edge_predict as predict

    if model.suffix.lower() == ".onnx":
        card = _card_of(model)
        size = card.get("export_imgsz") if card else None
        if args.imgsz is not None and size is not None and args.imgsz != size:
            raise UsageError(f"{model}: exported for --imgsz {size}, not {args.imgsz}")
        return predict.predict_onnx(model, images, conf)
    if args.imgsz is None and predict.export_size_beside(model) is None:
        beside = model.with_suffix(".onnx").name
        raise UsageError(f"{model}: no model card ({beside}) beside it; pass --imgsz")
    from azaion_assets.cli.release_command import settings_from_args
    from azaion_assets.lib.training.offline import prepare_ultralytics

    # Ultralytics logs to the stdout it finds at import (a first run announces its settings
    # file there): send it to stderr, so stdout holds only the detections (--json stays JSON).
    with contextlib.redirect_stdout(sys.stderr):
        prepare_ultralytics(settings_from_args(args).runtime_dir)  # before importing Ultralytics
        return predict.predict_pt(model, images, conf, args.imgsz)


def cmd_predict(args: argparse.Namespace) -> int:
    model, images = Path(args.model), [Path(p) for p in args.images]
    try:
        sizes = _check_files(model, images)
        card = _card_of(model)
        conf = args.conf if args.conf is not None else DEFAULT_CONF
        if args.conf is None and card and "score_threshold" in card:
            conf = float(card["score_threshold"])  # the card's recommendation
        if not 0 <= conf <= 1:
            raise UsageError(f"--conf {conf}: expected a score in [0, 1]")
        results = _run(args, model, images, conf)
    except UsageError as exc:
        print(f"predict: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for path, (width, height), detections in zip(images, sizes, results, strict=True):
        if args.json:
            record = {"image": str(path), "width": width, "height": height, "conf": conf}
            record["detections"] = [d.as_dict() for d in detections]
            print(json.dumps(record))
            continue
        print(f"{path} ({width}x{height}): {len(detections)} detections, score > {conf}")
        if detections:
            print(HEADER)
        for d in detections:
            print(
                f"  {d.cls:>4}  {d.name:<24} {d.score:6.3f}"
                f" {d.x1:8.1f} {d.y1:8.1f} {d.x2:8.1f} {d.y2:8.1f}"
            )
    return 0


def add_parser(sub: Any) -> None:
    cmd = sub.add_parser(
        "predict", help="detect objects with azaion.onnx or azaion.pt, in original image pixels"
    )
    cmd.add_argument("model", help="azaion.onnx (run as its model card says) or azaion.pt")
    cmd.add_argument("images", nargs="+", help="image files")
    cmd.add_argument(
        "--conf",
        type=float,
        help=f"keep scores above this (default: the card's threshold, else {DEFAULT_CONF})",
    )
    cmd.add_argument(
        "--imgsz", type=int, help="input size for a .pt (default: the export size in its card)"
    )
    cmd.add_argument("--json", action="store_true", help="one JSON object per image")
    cmd.set_defaults(func=cmd_predict)
