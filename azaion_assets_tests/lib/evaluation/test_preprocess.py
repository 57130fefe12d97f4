"""The project's letterbox is Ultralytics' predictor preprocessing, pixel for pixel."""

import numpy as np
import pytest
import torch

from azaion_assets.lib.evaluation.preprocess import (
    Letterbox,
    letterbox_bgr,
    prepare,
    read_bgr,
    to_input,
)
from azaion_assets.lib.training.offline import prepare_ultralytics


@pytest.fixture(autouse=True)
def offline_ultralytics(runtime_dir):
    prepare_ultralytics(runtime_dir)  # these tests import Ultralytics, which must come offline


SHAPES = [(128, 160), (160, 128), (97, 211), (300, 61), (1, 900), (720, 1280), (128, 128)]


@pytest.mark.parametrize(("height", "width"), SHAPES)
@pytest.mark.parametrize("size", [96, 128, 640])
def test_the_letterbox_is_ultralytics_letterbox(height, width, size):
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(height * 7 + width + size)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    ours, box = letterbox_bgr(image, size)
    theirs = LetterBox(size, auto=False)(image=image)
    assert isinstance(theirs, np.ndarray)
    assert ours.shape == (size, size, 3)
    assert np.array_equal(ours, theirs)
    assert (box.orig_h, box.orig_w) == (height, width)


@pytest.mark.parametrize(("height", "width"), SHAPES)
def test_boxes_map_back_as_ultralytics_scale_boxes(height, width):
    from ultralytics.utils.ops import scale_boxes

    size = 128
    box = Letterbox.fit(height, width, size)
    rows = np.array([[3.0, 5.0, 60.5, 99.0], [0.0, 0.0, 128.0, 128.0], [40, 41, 42, 43]])
    expected = scale_boxes((size, size), torch.tensor(rows), (height, width))
    assert isinstance(expected, torch.Tensor)
    assert np.allclose(box.to_original(rows), expected.numpy(), atol=1e-3)


def test_the_input_is_rgb_in_unit_range(tmp_path):
    import cv2

    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[..., 0] = 255  # pure blue in BGR
    path = tmp_path / "blue.png"
    cv2.imwrite(str(path), image)
    assert np.array_equal(read_bgr(path), image)
    x, box = prepare(path, 64)
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    inside = x[0, :, box.top + 1, box.left + 1]
    assert inside.tolist() == [0.0, 0.0, 1.0]  # R, G, B
    assert np.isclose(x[0, 0, 0, 0], 114 / 255)  # the padding
    assert np.array_equal(to_input(image)[0, 2], np.full((40, 80), 1.0, dtype=np.float32))


def test_an_undecodable_file_is_named(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"broken\.jpg"):
        read_bgr(path)
