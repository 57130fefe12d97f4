import pytest

from azaion_assets.lib.dataset.labels import LabelError, format_label, parse_label


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
