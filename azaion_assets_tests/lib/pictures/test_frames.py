"""Boxes land on the pixels their labels name, in the colour of whose they are."""

import numpy as np
import pytest

from azaion_assets.lib.pictures.frames import (
    CHALLENGER,
    TRUTH,
    Layer,
    box_pixels,
    contact_sheet,
    draw,
    thumbnail,
)

BLACK = np.zeros((100, 200, 3), dtype=np.uint8)  # 200 wide, 100 high


def test_a_box_is_where_its_label_says_in_pixels():
    box = (0, 0.5, 0.5, 0.2, 0.4)  # 40 x 40 pixels around the centre (100, 50)
    assert box_pixels(box, 200, 100) == (80, 30, 120, 70)
    out = draw(BLACK, [Layer([box], TRUTH)], names=["car"])
    assert tuple(out[50, 80]) == TRUTH and tuple(out[50, 120]) == TRUTH  # left, right edges
    assert tuple(out[70, 100]) == TRUTH  # bottom edge
    assert not out[50, 100].any() and not out[50, 70].any()  # inside, outside: untouched
    assert out[10:29, 80:110].any()  # the class name, above the box
    assert not BLACK.any()  # the frame given is not drawn on


def test_a_box_over_the_edge_is_drawn_inside_the_frame():
    assert box_pixels((0, 0.95, 0.05, 0.2, 0.2), 200, 100) == (170, 0, 199, 15)


def test_two_models_boxes_keep_their_colours_and_predictions_are_dashed():
    truth, predicted = (0, 0.25, 0.5, 0.2, 0.4), (1, 0.75, 0.5, 0.2, 0.4)
    out = draw(BLACK, [Layer([truth], TRUTH), Layer([predicted], CHALLENGER, dashed=True)])
    top_of_prediction = [tuple(p) for p in out[70, 130:170]]  # its bottom edge, dashed
    assert CHALLENGER in top_of_prediction and (0, 0, 0) in top_of_prediction
    assert all(tuple(p) == TRUTH for p in out[70, 30:70])  # the truth's, solid


def test_a_thumbnail_keeps_the_aspect_and_never_enlarges():
    assert thumbnail(BLACK, 50).shape == (25, 50, 3)
    assert thumbnail(BLACK, 400) is BLACK


def test_a_contact_sheet_has_a_cell_per_tile_in_rows():
    tiles = [(np.full((100, 200, 3), i * 40, dtype=np.uint8), f"frame {i}") for i in range(5)]
    sheet = contact_sheet(tiles, columns=3, tile_width=100)
    assert sheet.shape[1] == 300 and sheet.shape[0] == 2 * (50 + 18)
    assert sheet[10, 110, 0] == 40 and sheet[68 + 10, 110, 0] == 160  # tile 1, then tile 4
    with pytest.raises(ValueError, match="at least one tile"):
        contact_sheet([], columns=3, tile_width=100)
