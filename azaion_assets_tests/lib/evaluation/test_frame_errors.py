"""A frame's errors are what the edge shows wrong on it, and the galleries pick frames by rule."""

from pathlib import Path

import numpy as np

from azaion_assets.lib.evaluation.frame_errors import (
    Frame,
    differ_most,
    frame,
    iou_matrix,
    rule,
    worst,
)

TRUTH_CLASSES = np.array([0, 1])
TRUTH_BOXES = np.array([[10, 10, 50, 50], [100, 100, 140, 160]], dtype=float)


def _frame(rows, threshold=0.25, name="a.jpg") -> Frame:
    return frame(Path(name), 200, 200, TRUTH_CLASSES, TRUTH_BOXES, np.array(rows), threshold)


def test_iou_is_area_shared_over_area_covered():
    iou = iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10]]))
    assert np.allclose(iou, [[1.0, 50 / 150]])


def test_boxes_on_their_objects_are_no_error_and_only_boxes_above_the_threshold_count():
    right = _frame([[11, 11, 50, 50, 0.9, 0], [100, 102, 140, 160, 0.8, 1], [0, 0, 5, 5, 0.25, 0]])
    assert (right.missed, right.false, right.errors) == (0, 0, 0)
    assert len(right.shown) == 2  # 0.25 is not above the edge's threshold of 0.25


def test_a_wrong_class_is_a_false_box_and_a_miss_and_a_box_claims_one_object():
    wrong = _frame([[10, 10, 50, 50, 0.9, 1], [100, 100, 140, 160, 0.8, 1],
                    [100, 101, 140, 160, 0.7, 1]])  # fmt: skip
    assert (wrong.missed, wrong.false) == (1, 2)
    nothing = _frame([])
    assert (nothing.missed, nothing.false) == (2, 0)
    loose = _frame([[10, 10, 90, 90, 0.9, 0]])  # IoU 0.25 with the first object
    assert (loose.missed, loose.false) == (2, 1)


def test_doubt_is_how_far_the_best_box_of_its_class_was_from_certain_on_each_object():
    unsure = _frame(
        [[11, 11, 50, 50, 0.1, 0], [11, 11, 50, 50, 0.2, 0], [100, 100, 140, 160, 0.6, 0]]
    )
    assert unsure.errors == 3  # nothing of class 0 above 0.25; a box of class 0 on the truck
    assert unsure.doubt == 1.8  # (1 - 0.2) + (1 - 0): the wrong class does not count
    assert _frame([]).doubt == 2.0 and _frame([[11, 11, 50, 50, 0.9, 0]]).doubt == 1.1


def test_shown_boxes_turn_back_into_the_yolo_boxes_they_came_from():
    shown = _frame([[20, 40, 60, 100, 0.9, 1]])
    assert shown.yolo("shown") == [(1, 0.2, 0.35, 0.2, 0.3)]
    assert shown.yolo("truth")[1] == (1, 0.6, 0.65, 0.2, 0.3)


def _errors(name: str, missed: int, doubt: float = 0.0) -> Frame:
    empty = np.zeros((0, 6))
    return Frame(Path(name), 10, 10, np.zeros((missed, 5)), empty, missed, 0, doubt)


def test_the_gallery_takes_the_largest_differences_then_more_errors_then_names():
    a = [_errors("a", 1), _errors("d", 3), _errors("b", 5), _errors("c", 5), _errors("e", 3)]
    b = [_errors("a", 1), _errors("d", 6), _errors("b", 2), _errors("c", 1), _errors("e", 3)]
    picked = [x.image.name for x, _ in differ_most(a, b, 10)]
    assert picked == ["c", "d", "b"]  # a, e: as many errors; d (9 in all) before b (7)
    assert [x.image.name for x, _ in differ_most(a, b, 2)] == ["c", "d"]
    tied = [_errors("d", 2), _errors("b", 5)]  # both differ by 3 with 7 in all: by name
    b[1] = _errors("d", 6 - 1)
    assert [x.image.name for x, _ in differ_most(tied, b, 2)] == ["b", "d"]
    assert differ_most(a, b, 0) == []
    assert "largest difference" in rule("differ_most") and "IoU 0.5" in rule("differ_most")


def test_equal_errors_are_told_apart_by_doubt_and_agreement_in_both_is_left_out():
    a = [_errors("a", 2, 1.5), _errors("b", 2, 0.5), _errors("c", 2, 0.7)]
    b = [_errors("a", 2, 1.5), _errors("b", 2, 1.9), _errors("c", 2, 0.4)]
    assert [x.image.name for x, _ in differ_most(a, b, 5)] == ["b", "c"]


def test_the_worst_frames_have_the_most_errors_then_doubt_and_flawless_ones_are_left_out():
    frames = [_errors("b", 2), _errors("a", 2), _errors("c", 0), _errors("d", 7)]
    frames += [_errors("e", 2, 0.5), _errors("f", 0, 0.2)]
    assert [f.image.name for f in worst(frames, 10)] == ["d", "e", "a", "b", "f"]
