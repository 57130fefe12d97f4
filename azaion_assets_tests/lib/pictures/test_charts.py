"""Charts are real PNGs of the size asked, drawing the lines they are given."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from azaion_assets.lib.pictures.charts import line_chart, pr_curves, read_results, training_curves

RESULTS = """\
epoch,time,train/box_loss,train/cls_loss,train/l1_loss,metrics/precision(B),metrics/recall(B),\
metrics/mAP50(B),metrics/mAP50-95(B),val/box_loss,val/cls_loss,val/l1_loss,lr/pg0
1,1.9,4.07,5.75,0.057,0,0,0.10,0.05,3.30,5.66,0.040,0.0005
2,3.8,3.93,5.43,0.052,0.2,0.1,0.30,0.15,3.35,5.54,0.039,0.0011
3,5.7,3.50,5.01,0.049,0.4,0.3,0.50,0.25,3.10,5.20,0.037,0.0010
"""


def _image(png: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(png, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def _has(image: np.ndarray, bgr: tuple[int, int, int], tolerance: int = 10) -> bool:
    return bool((np.abs(image.astype(int) - bgr).max(axis=2) <= tolerance).any())


def test_a_line_chart_is_a_png_of_the_size_asked_with_its_lines_in_their_colours():
    png = line_chart(
        {"champion": ([0, 1], [1, 0]), "challenger": ([0, 1], [0.9, 0.2])},
        "t", "x", "y", size=(400, 300), colors={"champion": "#e62828", "challenger": "#008cff"},
    )  # fmt: skip
    image = _image(png)
    assert image.shape == (300, 400, 3)
    assert _has(image, (0x28, 0x28, 0xE6)) and _has(image, (0xFF, 0x8C, 0x00))  # BGR
    blank = _image(line_chart({"champion": ([0], [0])}, "t", "x", "y", size=(400, 300),
                              colors={"champion": "#e62828"}))  # fmt: skip
    assert not _has(blank, (0xFF, 0x8C, 0x00))  # a colour only where its line is


def test_training_curves_read_the_losses_and_map_ultralytics_wrote(tmp_path: Path):
    results = tmp_path / "results.csv"
    results.write_text(RESULTS)
    columns = read_results(results)
    assert columns["metrics/mAP50-95(B)"] == [0.05, 0.15, 0.25] and columns["epoch"] == [1, 2, 3]
    assert _image(training_curves(results, size=(900, 360))).shape == (360, 900, 3)


def test_a_results_file_without_what_a_chart_needs_says_so(tmp_path: Path):
    empty, lossless = tmp_path / "empty.csv", tmp_path / "lossless.csv"
    empty.write_text("epoch,train/box_loss\n")
    lossless.write_text("epoch,time\n1,2\n")
    with pytest.raises(ValueError, match="no epochs recorded"):
        training_curves(empty)
    with pytest.raises(ValueError, match="no loss or mAP columns"):
        training_curves(lossless)
    with pytest.raises(ValueError, match="nothing to draw"):
        pr_curves({})


def test_a_bar_chart_draws_one_bar_per_series_and_category_in_the_series_colours():
    from azaion_assets.lib.pictures.charts import bar_chart

    counts = {"train": {"Truck": 10, "Vehicle": 4}, "test": {"Truck": 3}}
    image = _image(bar_chart(counts, "boxes", "boxes", size=(500, 300)))
    assert image.shape == (300, 500, 3)
    assert _has(image, (0xB4, 0x77, 0x1F)) and _has(image, (0x0E, 0x7F, 0xFF))  # C0, C1
    with pytest.raises(ValueError, match="nothing to draw"):
        bar_chart({"train": {}}, "boxes", "boxes")


def test_a_confusion_chart_needs_a_label_per_row_of_a_square_matrix():
    from azaion_assets.lib.pictures.charts import confusion_chart

    image = _image(confusion_chart([[3, 0], [1, 0]], ["Truck", "background"], "t"))
    assert image.shape[0] == 360
    with pytest.raises(ValueError, match="square matrix"):
        confusion_chart([[3, 0], [1, 0]], ["Truck"], "t")
