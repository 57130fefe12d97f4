import random

import pytest

from azaion_assets.lib.labels.yolo_format import LabelError, check_box, format_label, parse_label


def test_valid_label_returns_class_ids():
    assert parse_label("0 0.5 0.5 0.2 0.2\n45 0.1 0.1 0.2 0.2\n\n") == [0, 45]


def test_empty_label_is_a_background_image():
    assert parse_label("") == []


def test_edges_tolerate_float_noise():
    assert parse_label("3 0.5 0.5 1.0000001 1.0\n") == [3]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0 0.5 0.5 0.2\n", "expected 5 fields, got 4"),
        ("0 0.5 0.5 0.2 0.2 0.9\n", "expected 5 fields, got 6"),
        ("a 0.5 0.5 0.2 0.2\n", "not an integer"),
        ("80 0.5 0.5 0.2 0.2\n", "class id 80 outside 0..79"),
        ("-1 0.5 0.5 0.2 0.2\n", "class id -1 outside"),
        ("0 0.5 x 0.2 0.2\n", "must be numbers"),
        ("0 1.5 0.5 0.2 0.2\n", "x=1.5 outside"),
        ("0 0.5 0.5 nan 0.2\n", "w=nan outside"),
        ("0 0.5 0.5 0 0.2\n", "zero or negative size"),
        ("0 0.95 0.5 0.2 0.2\n", "extends outside the image"),
        ("0 0.5 0.5 0.2 0.2\n1 0.5 0.05 0.2 0.2\n", "line 2: box extends outside"),
    ],
)
def test_invalid_labels_are_rejected_with_a_reason(text, reason):
    with pytest.raises(LabelError, match=reason):
        parse_label(text)


def test_format_round_trips():
    boxes = [(1, 0.5, 0.25, 0.1, 0.2), (20, 0.3, 0.3, 0.05, 0.05)]
    assert parse_label(format_label(boxes)) == [1, 20]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "0 0.5 0.5 0.0000004 0.2\n",
            "line 1: box has zero or negative size as written with 6 decimals "
            "(x=0.500000, y=0.500000, w=0.000000, h=0.200000)",
        ),
        (
            "0 0.0000004 0.5 0.0000028 0.2\n",
            "line 1: box extends outside the image as written with 6 decimals "
            "(x=0.000000, y=0.500000, w=0.000003, h=0.200000)",
        ),
    ],
)
def test_a_box_is_judged_as_its_line_is_written(text, reason):
    with pytest.raises(LabelError) as caught:
        parse_label(text)
    assert str(caught.value) == reason


def test_digits_past_the_sixth_decimal_do_not_decide():
    # x + w/2 is 1.0000011 as given, 0.999999 + 0.0000015 as written: inside the tolerance
    assert parse_label("0 0.9999994 0.5 0.0000034 0.2\n") == [0]


def _as_written_fits(x: float, y: float, w: float, h: float) -> bool:
    """The rule spelled out: the values a label line reads back, within the 1e-6 tolerance."""
    x, y, w, h = (float(f"{v:.6f}") for v in (x, y, w, h))
    lo, hi = -1e-6, 1 + 1e-6
    return (
        w > 0
        and h > 0
        and lo <= x - w / 2
        and x + w / 2 <= hi
        and lo <= y - h / 2
        and y + h / 2 <= hi
    )


def test_the_fast_check_decides_as_the_rule_on_boxes_at_its_edges():
    rng = random.Random(6)
    decided = {True: 0, False: 0}
    for _ in range(50_000):
        w, h = (rng.choice([rng.uniform(0, 3e-6), rng.uniform(0, 1), 1.0]) for _ in "wh")
        x, y = (
            rng.choice([side / 2, 1 - side / 2, rng.random()]) + rng.uniform(-2e-6, 2e-6)
            for side in (w, h)
        )
        expected = _as_written_fits(x, y, w, h)
        try:
            check_box(1, 0, x, y, w, h)
        except LabelError:
            assert not expected, (x, y, w, h)
        else:
            assert expected, (x, y, w, h)
        decided[expected] += 1
    assert min(decided.values()) > 10_000, decided
