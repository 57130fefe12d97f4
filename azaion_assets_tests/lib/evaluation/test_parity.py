"""Parity's comparisons: order-free matching, the top-rows fallback, row agreement."""

import numpy as np
import pytest

from azaion_assets.lib.evaluation.parity import _kth_score, _unmatched, iou, row_agreement


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
