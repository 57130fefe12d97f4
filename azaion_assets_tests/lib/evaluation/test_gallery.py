"""The gate's pictures: both curves, the confusion of the classes that occur, and the frames the
rule picks, drawn with the truth and each model's boxes in their colours."""

from pathlib import Path

import cv2
import numpy as np

from azaion_assets.lib.evaluation.frame_errors import frame
from azaion_assets.lib.evaluation.gallery import confusion_picture, gate_pictures, used_classes
from azaion_assets.lib.evaluation.onnx_eval import Score, Scored
from azaion_assets.lib.pictures.frames import CHALLENGER, CHAMPION, TRUTH

NAMES = {0: "ArmorVehicle", 1: "Truck", 2: "Vehicle", 3: "Artillery"}
TRUTH_BOX = np.array([[40.0, 40.0, 120.0, 100.0]])


def _scored(tmp_path: Path, predictions: dict[str, list], confusion: np.ndarray) -> Scored:
    frames = []
    for name, rows in predictions.items():
        path = tmp_path / name
        if not path.exists():
            cv2.imwrite(str(path), np.full((120, 160, 3), 90, np.uint8))
        frames.append(frame(path, 160, 120, np.array([0]), TRUTH_BOX, np.array(rows), 0.25))
    recall = np.linspace(0, 1, 11)
    return Scored(Score(0.5, 0.3, len(frames)), 0.25, frames, recall, 1 - recall, confusion)


def _near(image: np.ndarray, bgr, tolerance: int = 40) -> bool:
    return bool((np.abs(image.astype(int) - bgr).max(axis=2) <= tolerance).any())


def test_the_gate_shows_curves_confusion_and_the_frames_where_the_models_differ(tmp_path: Path):
    hit = [40, 40, 120, 100, 0.9, 0]
    miss = [0, 0, 20, 20, 0.9, 2]
    confusion = np.zeros((5, 5))
    confusion[0, 0], confusion[2, 4] = 2, 1
    challenger = _scored(tmp_path, {"a.jpg": [hit], "b.jpg": [miss], "c.jpg": [hit]}, confusion)
    champion = _scored(tmp_path, {"a.jpg": [hit], "b.jpg": [hit], "c.jpg": [miss, miss]}, confusion)
    shown = gate_pictures(challenger, champion, NAMES, gallery=5, width=320)
    assert [s.file for s in shown[:2]] == ["pr_curves.png", "confusion.png"]
    assert [s.frame for s in shown[2:]] == ["c.jpg", "b.jpg"]  # c differs by 3, b by 2; a: same
    assert (
        "challenger 0 errors" in shown[2].picture.title and "champion 3" in shown[2].picture.title
    )
    drawn = shown[3].picture.frame
    assert drawn is not None and drawn.shape == (120, 160, 3)  # never enlarged
    assert _near(drawn, TRUTH) and _near(drawn, CHALLENGER) and _near(drawn, CHAMPION)
    alone = gate_pictures(challenger, None, NAMES, gallery=5, width=320)
    # No champion: the challenger's worst; a and c have no errors, only doubt (1 - 0.9).
    assert [s.frame for s in alone[2:]] == ["b.jpg", "a.jpg", "c.jpg"]


def test_the_confusion_matrix_keeps_the_classes_that_occur_and_the_background(tmp_path: Path):
    confusion = np.zeros((5, 5))
    confusion[0, 0], confusion[2, 4] = 3, 1  # a Vehicle box where there was nothing
    matrix, labels = used_classes(confusion, NAMES)
    assert labels == ["ArmorVehicle", "Vehicle", "background"]
    assert matrix.tolist() == [[3, 0, 0], [0, 0, 1], [0, 0, 0]]
    chart = confusion_picture(_scored(tmp_path, {}, confusion), NAMES, "t").picture.png
    assert chart is not None and cv2.imdecode(np.frombuffer(chart, np.uint8), 1) is not None
