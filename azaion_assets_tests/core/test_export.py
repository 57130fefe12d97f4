import json
from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from azaion_assets.core.export import (
    EXPORT_RECORD,
    ExportError,
    Parity,
    _kth_score,
    _unmatched,
    input_size,
    install_export,
    iou,
    read_export_record,
    verified_export,
)

PASSED = Parity(8, 64, "boxes", 20, 20, 0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, True)


def _tiny_onnx(path, size=64):
    """A one-node graph with the detector's input shape: enough for the export bookkeeping."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["output0"])],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, size, size])],
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.fixture
def model_dir(tmp_path):
    weights = tmp_path / "azaion-2026-12-01" / "weights"
    weights.mkdir(parents=True)
    (weights / "best.pt").write_bytes(b"weights v1")
    return weights.parent


def test_an_installed_export_is_verified_by_its_hashes(model_dir, tmp_path):
    weights = model_dir / "weights" / "best.pt"
    staged = _tiny_onnx(tmp_path / "staged.onnx")
    record = install_export(staged, weights, PASSED, extra={"imgsz_from": "EXPORT_ONNX_IMGSZ"})
    assert not staged.exists()  # renamed, not copied
    assert read_export_record(model_dir) == record
    assert record["input"] == {"images": [1, 3, 64, 64]} and record["imgsz"] == 64
    assert record["imgsz_from"] == "EXPORT_ONNX_IMGSZ"
    assert verified_export(model_dir, weights) == weights.with_suffix(".onnx")

    onnx_path = weights.with_suffix(".onnx")
    original = onnx_path.read_bytes()
    onnx_path.write_bytes(original + b"\0")  # another file under the same name
    with pytest.raises(ExportError, match="not the file that passed parity"):
        verified_export(model_dir, weights)
    onnx_path.write_bytes(original)
    weights.write_bytes(b"weights v2")  # retrained after the export
    with pytest.raises(ExportError, match="changed since"):
        verified_export(model_dir, weights)


def test_an_export_that_failed_parity_is_never_installed(model_dir, tmp_path):
    weights = model_dir / "weights" / "best.pt"
    staged = _tiny_onnx(tmp_path / "staged.onnx")
    with pytest.raises(ExportError):
        install_export(staged, weights, replace(PASSED, passed=False))
    assert not weights.with_suffix(".onnx").exists() and read_export_record(model_dir) is None
    with pytest.raises(ExportError, match="no ONNX export that passed parity"):
        verified_export(model_dir, weights)


def test_a_record_without_checksums_is_not_believed(model_dir):
    weights = model_dir / "weights" / "best.pt"
    onnx_path = _tiny_onnx(weights.with_suffix(".onnx"))
    old = {"onnx": str(onnx_path), "parity_passed": True, "parity": {}}  # written before 0.x
    (model_dir / EXPORT_RECORD).write_text(json.dumps(old))
    with pytest.raises(ExportError, match="predates checksums"):
        verified_export(model_dir, weights)


def test_the_input_size_is_read_from_the_file(tmp_path):
    assert input_size(_tiny_onnx(tmp_path / "a.onnx", 96)) == 96


def test_the_kth_score_keeps_the_top_rows():
    rows = np.zeros((6, 6), dtype=np.float32)
    rows[:, 4] = [0.1, 0.5, 0.3, 0.3, 0.05, 0.2]
    assert _kth_score(rows, 3) == pytest.approx(0.3)
    assert _kth_score(rows, 100) == pytest.approx(0.05)
    assert int((rows[:, 4] >= _kth_score(rows, 2)).sum()) == 3  # ties at the cut stay in


def test_iou():
    a = np.array([0, 0, 10, 10.0])
    assert iou(a, a) == 1.0
    assert iou(a, np.array([5, 0, 15, 10.0])) == 50 / 150
    assert iou(a, np.array([20, 20, 30, 30.0])) == 0.0


def _rows(*rows):
    return np.array(rows, dtype=np.float32)


def test_matching_ignores_row_order_and_low_scores():
    ref = _rows([0, 0, 10, 10, 0.9, 1], [20, 20, 30, 30, 0.8, 2], [5, 5, 6, 6, 0.01, 3])
    other = ref[[1, 0, 2]].copy()
    other[2, :4] = [50, 50, 60, 60]  # below the threshold: not compared
    missing, matched, diff, worst_iou = _unmatched(ref, other, conf=0.25, tol=0.02, min_iou=0.9)
    assert (missing, matched, worst_iou) == (0, 2, 1.0) and diff == 0.0


def test_matching_catches_moved_boxes_and_wrong_classes():
    ref = _rows([0, 0, 10, 10, 0.9, 1], [20, 20, 30, 30, 0.8, 2])
    other = _rows([0, 0, 10, 10, 0.9, 5], [22, 20, 32, 30, 0.8, 2])
    missing, matched, _, _ = _unmatched(ref, other, conf=0.25, tol=0.02, min_iou=0.9)
    assert (missing, matched) == (2, 0)


def test_a_box_just_under_the_threshold_on_one_side_still_matches():
    ref = _rows([0, 0, 10, 10, 0.251, 1])
    other = _rows([0, 0, 10, 10, 0.249, 1])
    missing, matched, diff, _ = _unmatched(ref, other, conf=0.25, tol=0.02, min_iou=0.9)
    assert (missing, matched) == (0, 1) and abs(diff - 0.002) < 1e-6


def test_row_agreement_is_order_free_and_checks_boxes():
    from azaion_assets.core.export import row_agreement

    rng = np.random.default_rng(0)
    rows = np.column_stack(
        [rng.uniform(0, 100, (300, 4)), np.full(300, 1e-4), rng.integers(0, 3, 300)]
    )
    shuffled = rows[rng.permutation(300)]
    assert row_agreement(rows, shuffled, score_tol=1e-3, box_tol_px=1.0) == 1.0
    moved = shuffled.copy()
    moved[:60, :4] += 5.0  # a fifth of the boxes drift by 5 px
    assert abs(row_agreement(rows, moved, score_tol=1e-3, box_tol_px=1.0) - 0.8) < 1e-9
    rescored = shuffled.copy()
    rescored[:, 4] += 0.01
    assert row_agreement(rows, rescored, score_tol=1e-3, box_tol_px=1.0) == 0.0
