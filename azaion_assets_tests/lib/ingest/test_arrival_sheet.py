"""A quarantined message's image is shown only when it is safe to: a body refused for its image,
too big, or not an annotation is never decoded to be shown."""

import json
from pathlib import Path

import cv2
import numpy as np

from azaion_assets.dev.messages import Author, annotation
from azaion_assets.dev.synthetic import samples
from azaion_assets.lib.ingest import arrival_sheet
from azaion_assets.lib.ingest.arrival_sheet import Quarantined, quarantined_image


def _quarantined(folder: Path, body: bytes, reason: str, offset: int = 7) -> Quarantined:
    record = folder / f"{offset:020d}.json"
    record.write_text(json.dumps({"offset": offset, "reason": reason, "partition": "p"}))
    record.with_suffix(".bin").write_bytes(body)
    return Quarantined(offset, "bad_0000", reason, record)


def test_a_message_refused_for_a_box_shows_its_image_and_the_boxes_it_named(tmp_path: Path):
    (sample,) = samples(1, seed=3, prefix="bad", width=64)
    body, _ = annotation("bad_0000", sample.image, ".jpg", [(200, 0.5, 0.5, 0.2, 0.2)], Author())
    found = quarantined_image(_quarantined(tmp_path, body, "detection 0: class 200 outside 0..79"))
    assert found is not None
    image, boxes = found
    assert image.shape[1] == 64 and boxes == [(200, 0.5, 0.5, 0.2, 0.2)]


def test_what_is_refused_for_its_image_too_big_or_garbage_is_not_shown(tmp_path, monkeypatch):
    (sample,) = samples(1, seed=3, prefix="bad", width=64)
    body, _ = annotation("bad_0000", sample.image, ".jpg", [], Author())
    assert quarantined_image(_quarantined(tmp_path, body, "image truncated or corrupt")) is None
    assert quarantined_image(_quarantined(tmp_path, b"\x93garbage", "undecodable msgpack")) is None
    strip = cv2.imencode(".jpg", np.full((50, 1000, 3), 90, np.uint8))[1].tobytes()
    sliver, _ = annotation("bad_0000", strip, ".jpg", [], Author())  # OpenCV reads it, the door not
    assert quarantined_image(_quarantined(tmp_path, sliver, "a name refused")) is None
    monkeypatch.setattr(arrival_sheet, "MAX_SHOWN_BODY", len(body) - 1)
    assert quarantined_image(_quarantined(tmp_path, body, "a name refused")) is None


def test_an_image_refused_for_its_mode_or_by_a_decoder_error_is_not_decoded(tmp_path, monkeypatch):
    (sample,) = samples(1, seed=3, prefix="bad", width=64)
    body, _ = annotation("bad_0000", sample.image, ".jpg", [], Author())

    def never(*_args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(arrival_sheet, "check_image", never)
    for reason in ("unsupported image mode F (TIFF): OpenCV reads none", "decoder error: X"):
        assert quarantined_image(_quarantined(tmp_path, body, reason)) is None


def test_a_quarantined_image_is_judged_within_the_judge_s_budget(tmp_path):
    """A PNG of tiny chunks refused for its name is not decoded in the asset's own process."""
    from azaion_assets.lib.stream.image_judge import ImageJudge

    png = cv2.imencode(".png", np.full((48, 64, 3), 90, np.uint8))[1].tobytes()
    flood = png[:33] + b"\x00\x00\x00\x00prVt\xa6\x87\x8c\x49" * 600_000 + png[33:]
    body, _ = annotation("bad_0000", flood, ".png", [], Author())
    with ImageJudge(0.3, 64 << 20) as judge:
        assert quarantined_image(_quarantined(tmp_path, body, "a name refused"), judge) is None
        assert judge.started == 2  # cut off, and replaced
        plain, _ = annotation("bad_0000", png, ".png", [], Author())
        found = quarantined_image(_quarantined(tmp_path, plain, "a name refused", 8), judge)
        assert found is not None and found[0].shape == (48, 64, 3)
