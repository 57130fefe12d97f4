import numpy as np
from PIL import Image

from azaion_assets.core.export import _unmatched, iou, letterbox


def test_letterbox_keeps_aspect_and_pads_grey(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (200, 100), (255, 0, 0)).save(path)
    x = letterbox(path, 64)
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    assert np.allclose(x[0, :, 32, 32], [1.0, 0.0, 0.0])  # image in the middle
    assert np.allclose(x[0, :, 2, 32], 114 / 255)  # padding above


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
