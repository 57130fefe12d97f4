"""The reference predictor: the ONNX run from its card and the .pt run through Ultralytics give
the same boxes, in original pixels, on non-square images of either orientation."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from azaion_assets.lib.champion.edge_predict import Detection, predict_onnx, predict_pt
from azaion_assets.lib.evaluation.parity import iou
from azaion_assets.lib.evaluation.preprocess import Letterbox, prepare, read_bgr
from azaion_assets_tests.tiny_detector import (
    EXPORT_IMGSZ,
    SHAPES,
    TRAIN_IMGSZ,
    TinyDetector,
    tiny_detector,
)

pytestmark = pytest.mark.slow
CONF = 0.01  # low: the tiny model's scores sit around 0.01 to 0.5


@pytest.fixture(scope="module")
def detector(tmp_path_factory, runtime_dir) -> TinyDetector:
    return tiny_detector(tmp_path_factory, runtime_dir)


def assert_same_boxes(a: list[Detection], b: list[Detection]) -> int:
    """Same count; each box of ``a`` has a partner in ``b``: same class, IoU > 0.99, score
    within 0.01. Returns the number of boxes compared."""
    assert len(a) == len(b), (a, b)
    used: set[int] = set()
    for d in a:
        best, best_iou = None, 0.99
        for j, e in enumerate(b):
            box_iou = iou(np.array([d.x1, d.y1, d.x2, d.y2]), np.array([e.x1, e.y1, e.x2, e.y2]))
            if j not in used and e.cls == d.cls and box_iou > best_iou:
                best, best_iou = j, box_iou
        assert best is not None, f"no partner for {d}"
        used.add(best)
        assert abs(b[best].score - d.score) <= 0.01 and b[best].name == d.name
    return len(a)


def _by_shape(detector: TinyDetector, results: list[list[Detection]]) -> dict[tuple, int]:
    counts: dict[tuple, int] = {}
    for path, dets in zip(detector.images, results, strict=True):
        image = read_bgr(path)
        key = (image.shape[1], image.shape[0])
        counts[key] = counts.get(key, 0) + len(dets)
    return counts


def test_onnx_and_pt_agree_on_landscape_and_portrait_images(detector: TinyDetector):
    onnx_results = predict_onnx(detector.onnx, detector.images, CONF)
    pt_results = predict_pt(detector.pt, detector.images, CONF)  # imgsz from the card beside it
    compared = sum(assert_same_boxes(a, b) for a, b in zip(onnx_results, pt_results, strict=True))
    counts = _by_shape(detector, onnx_results)
    assert set(counts) == set(SHAPES)
    assert compared >= 20 and all(counts.values()), counts  # never a hollow comparison


def test_boxes_are_in_original_pixels(detector: TinyDetector):
    results = predict_onnx(detector.onnx, detector.images, CONF)
    widest = 0.0
    for path, dets in zip(detector.images, results, strict=True):
        height, width = read_bgr(path).shape[:2]
        for d in dets:
            assert 0 <= d.x1 <= d.x2 <= width and 0 <= d.y1 <= d.y2 <= height
        if width == 320:
            widest = max([widest, *(d.x2 for d in dets)])
    assert widest > EXPORT_IMGSZ  # beyond the model input: mapped back to the 320-wide image
    assert results[0][0].name in {"ArmorVehicle", "Truck", "MilitaryMan", "ArmorVehicle(Wint)"}


def test_the_rows_are_the_model_output_mapped_back(detector: TinyDetector):
    import onnxruntime as ort

    session = ort.InferenceSession(str(detector.onnx), providers=["CPUExecutionProvider"])
    image = detector.images[2]  # 320x180
    x, box = prepare(image, EXPORT_IMGSZ)
    rows = np.asarray(session.run(None, {"images": x})[0])[0]
    kept = rows[rows[:, 4] > CONF]
    expected = Letterbox.fit(180, 320, EXPORT_IMGSZ).to_original(kept[:, :4])
    (dets,) = predict_onnx(detector.onnx, [image], CONF)
    assert box == Letterbox.fit(180, 320, EXPORT_IMGSZ) and len(dets) == len(kept) > 0
    got = np.array([[d.x1, d.y1, d.x2, d.y2] for d in dets])
    assert np.allclose(got, expected) and [d.cls for d in dets] == kept[:, 5].astype(int).tolist()
    # strictly greater than conf: the top row, scoring exactly conf, is dropped (as Ultralytics)
    top = float(kept[0, 4])
    assert predict_onnx(detector.onnx, [image], top) == [[]]
    assert (
        len(
            predict_onnx(
                detector.onnx, [image], float(np.nextafter(np.float32(top), np.float32(0)))
            )[0]
        )
        >= 1
    )


def test_bgr_input_moves_the_boxes(detector: TinyDetector):
    import onnxruntime as ort

    session = ort.InferenceSession(str(detector.onnx), providers=["CPUExecutionProvider"])
    moved = 0
    for image in detector.images:
        x, _ = prepare(image, EXPORT_IMGSZ)
        rgb = np.asarray(session.run(None, {"images": x})[0])[0]
        bgr = np.asarray(session.run(None, {"images": np.ascontiguousarray(x[:, ::-1])})[0])[0]
        top_rgb, top_bgr = rgb[rgb[:, 4] > CONF], bgr[bgr[:, 4] > CONF]
        assert not np.allclose(rgb, bgr, atol=1e-3)  # every output changes
        same = len(top_rgb) == len(top_bgr) and np.allclose(top_rgb, top_bgr, atol=0.5)
        moved += not same
    assert moved >= len(detector.images) * 3 // 4  # and the detections change on most images


def test_the_export_size_matters_for_the_pt(detector: TinyDetector):
    images = detector.images[2:4]  # 320x180
    at_export = predict_pt(detector.pt, images, CONF, imgsz=EXPORT_IMGSZ)
    assert at_export == predict_pt(detector.pt, images, CONF)  # the card's size by default
    at_training = predict_pt(detector.pt, images, CONF, imgsz=TRAIN_IMGSZ)
    assert at_training != at_export


def test_the_pt_needs_a_size_without_a_card_beside_it(detector: TinyDetector, tmp_path):
    lone = shutil.copyfile(detector.pt, tmp_path / "lone.pt")
    with pytest.raises(ValueError, match=r"lone\.pt.*lone\.onnx"):
        predict_pt(lone, detector.images[:1], CONF)
    (dets,) = predict_pt(lone, detector.images[:1], CONF, imgsz=EXPORT_IMGSZ)
    assert dets and dets[0].name != f"Class-{dets[0].cls}"  # names from the checkpoint


def test_without_a_card_the_classes_are_slot_numbers(detector: TinyDetector):
    (named,) = predict_onnx(detector.onnx, detector.images[:1], CONF)
    (plain,) = predict_onnx(detector.plain_onnx, detector.images[:1], CONF)
    assert [d.cls for d in plain] == [d.cls for d in named] and plain
    assert [d.name for d in plain] == [f"Class-{d.cls}" for d in plain]
    assert [d.name for d in named] == [detector.slot_names[d.cls] for d in named]
