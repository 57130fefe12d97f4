"""The hostile inputs a fuzz run found (issue 16), kept as regression cases, and the box rule
that the decoder shares with the dataset, checked over many random boxes."""

import json
import random
from datetime import UTC, datetime

import pytest

from azaion_assets.dev.synthetic import render
from azaion_assets.lib.dataset.labels import LabelError, format_label, parse_label
from azaion_assets.lib.stream.contract import decode_message, pack
from azaion_assets.lib.stream.events import AnnotationEvent, Rejected

WHEN = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)
BOX = {"cls": 20, "x": 0.5, "y": 0.5, "w": 0.2, "h": 0.3}


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return render(random.Random(1), 64, 48)[0]


def _annotation(jpeg: bytes, **over) -> bytes:
    """A valid Created message body, with the fields in ``over`` replaced."""
    fields = {
        "date": WHEN,
        "name": "video7_000123",
        "media": "video7.mp4",
        "ticks": 1_230_000_000,
        "ext": ".jpg",
        "dets": json.dumps([BOX]),
        "image": jpeg,
        "role": 20,
        "email": "val@azaion.com",
        "source": 1,
        "status": 10,
    }
    fields.update(over)
    return pack(list(fields.values()))


def _dets(**over) -> str:
    return json.dumps([{**BOX, **over}])


CREATED = {"AnnotationStatus": 10}

REJECTED = {
    # Boxes the dataset would reject once written with 6 decimals.
    "width written as 0.000000": (
        {"dets": _dets(w=4e-7)},
        CREATED,
        "invalid box: detection 1: box has zero or negative size as written with 6 decimals "
        "(x=0.500000, y=0.500000, w=0.000000, h=0.300000)",
    ),
    "edge pushed out by rounding": (
        {"dets": _dets(x=4e-7, w=2.8e-6)},
        CREATED,
        "invalid box: detection 1: box extends outside the image as written with 6 decimals "
        "(x=0.000000, y=0.500000, w=0.000003, h=0.300000)",
    ),
}


@pytest.mark.parametrize(("over", "props", "reason"), REJECTED.values(), ids=REJECTED.keys())
def test_hostile_annotations_are_rejected_with_their_own_reason(jpeg, over, props, reason):
    decoded = decode_message(_annotation(jpeg, **over), props)
    assert isinstance(decoded.event, Rejected)
    assert decoded.event.reason == reason


def _random_box(rng: random.Random) -> dict:
    """Mostly boxes at the edges of the rule: sizes around the 6th decimal, sides around the
    image's edges, where rounding to the written precision decides."""

    def size() -> float:
        return rng.choice([rng.uniform(0, 3e-6), rng.uniform(0, 1), 5e-7, 1e-6, 1.0])

    def centre(side: float) -> float:
        near = rng.uniform(-2e-6, 2e-6)
        return rng.choice([rng.uniform(0, 1), side / 2 + near, 1 - side / 2 + near])

    w, h = size(), size()
    return {
        "cls": rng.choice([0, 79, rng.randrange(80)]),
        "x": centre(w),
        "y": centre(h),
        "w": w,
        "h": h,
    }


def test_every_box_the_decoder_accepts_is_written_as_a_line_the_dataset_accepts(jpeg):
    rng = random.Random(16)
    outcomes = {"accepted": 0, "rejected": 0, "rejected as written": 0}
    for _ in range(10_000):
        box = _random_box(rng)
        decoded = decode_message(_annotation(jpeg, dets=json.dumps([box])), CREATED)
        if isinstance(decoded.event, AnnotationEvent):
            assert parse_label(decoded.event.label_text()) == [box["cls"]], box
            outcomes["accepted"] += 1
            continue
        assert isinstance(decoded.event, Rejected), box
        assert decoded.event.reason.startswith("invalid box: detection 1: "), decoded.event
        line = format_label([(box["cls"], box["x"], box["y"], box["w"], box["h"])])
        with pytest.raises(LabelError):  # and the dataset rejects what the decoder rejects
            parse_label(line)
        outcomes["rejected"] += 1
        outcomes["rejected as written"] += "as written with 6 decimals" in decoded.event.reason
    assert outcomes["accepted"] > 2_000 and outcomes["rejected"] > 5_000, outcomes
    assert outcomes["rejected as written"] > 1_000, outcomes  # the cases the rounding decides
