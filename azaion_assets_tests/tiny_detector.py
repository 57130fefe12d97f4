"""A tiny trained detector exported to ONNX with its model card, for the predict and card tests.

Trained once per test session and shared by every module that needs a trained detector (the
first to ask trains it, later ones reuse the folder): ``yolo26n.yaml`` from scratch on 100
synthetic summer images, 30 epochs at 96 on the CPU, exported at 128, so training size and export
size differ as they may in production. 100 images make it good enough to lose measurably on
other scenes (the champion monitor's tests).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from azaion_assets.dev.synthetic import write_samples
from azaion_assets.lib.config.datatree import AnnotationDir
from azaion_assets.lib.fsio.locks import file_lock

PARTITION = "2026-11-24"
TRAIN_IMGSZ = 96
EXPORT_IMGSZ = 128
EPOCHS = 30
# (width, height): landscape and portrait, none of them square nor the export size
SHAPES = [(160, 128), (320, 180), (128, 160), (180, 320)]


@dataclasses.dataclass(frozen=True)
class TinyDetector:
    pt: Path
    onnx: Path  # with its card embedded
    plain_onnx: Path  # the same export before embedding
    images: list[Path]  # SHAPES, two images each
    slot_names: dict[int, str]


IMAGES = 100  # synthetic summer images it learns from, seed 5


def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's temp root: under pytest-xdist each worker has a basetemp of its own below
    it, so what one worker builds there the others find."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def tiny_detector(tmp_path_factory: pytest.TempPathFactory, runtime_dir: Path) -> TinyDetector:
    images = IMAGES
    base = session_dir(tmp_path_factory) / f"tiny-detector-{images}"
    with file_lock(base.with_name(base.name + ".lock")):  # one build, whichever worker asks
        if not (base / "done.json").is_file():
            shutil.rmtree(base, ignore_errors=True)  # what a failed build left
            _build(base, runtime_dir, images)
    done = json.loads((base / "done.json").read_text())
    return TinyDetector(
        pt=Path(done["pt"]),
        onnx=Path(done["onnx"]),
        plain_onnx=Path(done["plain_onnx"]),
        images=[Path(p) for p in done["images"]],
        slot_names={int(k): v for k, v in done["slot_names"].items()},
    )


def _build(base: Path, runtime_dir: Path, count: int) -> None:
    from azaion_assets.lib.champion.card import build_card, embed_card
    from azaion_assets.lib.config.datatree import DataTree
    from azaion_assets.lib.config.settings import Settings
    from azaion_assets.lib.dataset.formed_dataset import DATA_YAML
    from azaion_assets.lib.dataset.forming import form_dataset
    from azaion_assets.lib.evaluation.export import export_onnx
    from azaion_assets.lib.fsio.digest import sha256
    from azaion_assets.lib.labels.classes import load_classes, slot_names
    from azaion_assets.lib.training.offline import disable_online_checks, prepare_ultralytics

    prepare_ultralytics(runtime_dir)
    disable_online_checks(False)
    from ultralytics import YOLO

    tree = DataTree.from_settings(Settings(azaion_root_dir=base / "azaion")).ensure()
    write_samples(tree.data, count, seed=5)
    names = slot_names(load_classes(tree.classes_file))
    report = form_dataset(tree, PARTITION, (70, 20, 10), names)
    # Straight to Ultralytics (lib.training.trainer cannot skip warmup and validation): without them
    # 30 epochs lift the one-to-one head's scores from its 1e-4 prior to real, image-dependent
    # ones, which the comparisons need.
    with contextlib.chdir(base):
        YOLO("yolo26n.yaml").train(
            data=str(report.path / DATA_YAML),
            epochs=EPOCHS,
            imgsz=TRAIN_IMGSZ,
            batch=8,
            workers=0,
            device="cpu",
            warmup_epochs=0,
            lr0=0.01,
            optimizer="AdamW",
            nms=False,
            val=False,
            plots=False,
            amp=False,
            seed=0,
            deterministic=True,
            project=str(base / "runs"),
            name="train",
            verbose=False,
        )
        pt = base / "model" / "azaion.pt"
        pt.parent.mkdir()
        shutil.copyfile(base / "runs" / "train" / "weights" / "last.pt", pt)
        exported = export_onnx(pt, EXPORT_IMGSZ)
    plain = exported.with_name("plain.onnx")
    shutil.copyfile(exported, plain)
    card = build_card(
        exported,
        slot_names=names,
        training_imgsz=TRAIN_IMGSZ,
        dataset_partition=PARTITION,
        score_threshold=0.25,
        weights_sha256=sha256(pt),
    )
    embed_card(exported, card)
    images = []
    for i, (width, height) in enumerate(SHAPES):
        folder = base / "images" / f"{width}x{height}"
        for sample in write_samples(
            AnnotationDir(folder), 2, seed=100 + i, width=width, height=height
        ):
            images.append(folder / "images" / f"{sample.name}.jpg")
    done = {
        "pt": str(pt),
        "onnx": str(exported),
        "plain_onnx": str(plain),
        "images": [str(p) for p in images],
        "slot_names": {str(k): v for k, v in names.items()},
    }
    (base / "done.json").write_text(json.dumps(done))
