"""The hostile inputs a fuzz run found (issue 16), kept as regression cases, and the box rule
that the decoder shares with the dataset, checked over many random boxes."""

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from azaion_assets.dev.synthetic import render
from azaion_assets.lib.labels.yolo_format import LabelError, format_label, parse_label
from azaion_assets.lib.stream.contract import decode_message, pack
from azaion_assets.lib.stream.events import AnnotationEvent, BulkEvent, Rejected, Status
from azaion_assets.lib.stream.limits import MessageLimits
from azaion_assets_tests.lib.stream.test_contract import _fields

WHEN = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)
BOX = {"cls": 20, "x": 0.5, "y": 0.5, "w": 0.2, "h": 0.3}


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return render(random.Random(1), 64, 48)[0]


def _annotation(jpeg: bytes, **over) -> bytes:
    """A valid Created message body, with the fields in ``over`` replaced."""
    return pack(_fields(jpeg, **over))


def _dets(**over) -> str:
    return json.dumps([{**BOX, **over}])


CREATED = {"AnnotationStatus": 10}
HUGE = "1" + "0" * 5_000  # past Python's 4,300-digit limit on int-string conversion

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
    # Statuses, roles and class ids that are not integers, coordinates that are not numbers.
    "status property 10.9": (
        {},
        {"AnnotationStatus": 10.9},
        "AnnotationStatus is float 10.9, not an integer",
    ),
    "status property 10.0": (
        {},
        {"AnnotationStatus": 10.0},
        "AnnotationStatus is float 10.0, not an integer",
    ),
    "status property true": (
        {},
        {"AnnotationStatus": True},
        "AnnotationStatus is bool True, not an integer",
    ),
    "status property in Arabic-Indic digits": (
        {},
        {"AnnotationStatus": "\u0661\u0660"},
        "unknown AnnotationStatus '\u0661\u0660': neither a status name nor its decimal digits",
    ),
    "status property with a sign": (
        {},
        {"AnnotationStatus": "+10"},
        "unknown AnnotationStatus '+10': neither a status name nor its decimal digits",
    ),
    "status property with a leading zero": (
        {},
        {"AnnotationStatus": b"010"},
        "unknown AnnotationStatus '010': neither a status name nor its decimal digits",
    ),
    "status property with an underscore": (
        {},
        {"AnnotationStatus": "1_0"},
        "unknown AnnotationStatus '1_0': neither a status name nor its decimal digits",
    ),
    "body status 10.9": ({"status": 10.9}, CREATED, "status is float 10.9, not an integer"),
    "body status as text": ({"status": "10"}, CREATED, "status is str '10', not an integer"),
    "body status nil": ({"status": None}, CREATED, "status is NoneType, not an integer"),
    "role 20.0": ({"role": 20.0}, CREATED, "role is float 20.0, not an integer"),
    "role true": ({"role": True}, CREATED, "role is bool True, not an integer"),
    "class id true": (
        {"dets": _dets(cls=True)},
        CREATED,
        "detection 0: cls: Input should be a valid integer, got bool True",
    ),
    "class id 1.0": (
        {"dets": _dets(cls=1.0)},
        CREATED,
        "detection 0: cls: Input should be a valid integer, got float 1.0",
    ),
    "class id as text": (
        {"dets": _dets(cls="+1")},
        CREATED,
        "detection 0: cls: Input should be a valid integer, got str '+1'",
    ),
    "coordinate as text": (
        {"dets": _dets(x="0.5")},
        CREATED,
        "detection 0: x: Input should be a valid number, got str '0.5'",
    ),
    # Malformed properties that used to end as a generic "decoder error".
    "status property not UTF-8": (
        {},
        {"AnnotationStatus": b"\xff\xfe"},
        "AnnotationStatus: bytes b'\\xff\\xfe' is not UTF-8 text",
    ),
    "detections not UTF-8": (
        {"dets": b"\xff[]"},
        CREATED,
        "detections: bytes b'\\xff[]' is not UTF-8 text",
    ),
    "a 5,000-digit class id": (
        {"dets": json.dumps([BOX]).replace('"cls": 20', f'"cls": {HUGE}')},
        CREATED,
        "detections hold an integer of over 4300 digits",
    ),
    "a 5,000-digit coordinate": (
        {"dets": json.dumps([BOX]).replace('"w": 0.2', f'"w": {HUGE}')},
        CREATED,
        "detections hold an integer of over 4300 digits",
    ),
    # Text and numbers without bounds (issue 28): each refused with its own reason.
    "a 31 MB media name": (
        {"media": "v" * (31 << 20)},
        CREATED,
        "originalMediaName longer than 1,024 bytes",
    ),
    "a media name of 342 three-byte characters": (
        {"media": "\u0915" * 342},  # Devanagari KA
        CREATED,
        "originalMediaName longer than 1,024 bytes",
    ),
    "a media name that is a number": (
        {"media": 7},
        CREATED,
        "originalMediaName is int 7, not a string",
    ),
    "a 31 MB email": (
        {"email": "v" * (31 << 20) + "@azaion.com"},
        CREATED,
        "createdEmail longer than 254 bytes",
    ),
    "an email of 255 bytes": (
        {"email": "v" * 244 + "@azaion.com"},
        CREATED,
        "createdEmail longer than 254 bytes",
    ),
    "a negative frame time": ({"ticks": -1}, CREATED, "time is negative (-1 ticks)"),
    "a frame time past 64 bits": (
        {"ticks": 1 << 63},
        CREATED,
        "time of 9223372036854775808 ticks is past a 64-bit integer",
    ),
    "a creation date in year 1": (
        {"date": datetime(1, 1, 1, tzinfo=UTC)},
        CREATED,
        "createdDate 0001-01-01T00:00:00+00:00 is outside 2000-01-01 to a day past the "
        "ingest's clock",
    ),
    "a creation date in year 9999": (
        {"date": "9999-12-31T23:59:59Z"},
        CREATED,
        "createdDate 9999-12-31T23:59:59+00:00 is outside 2000-01-01 to a day past the "
        "ingest's clock",
    ),
    "a creation date as epoch 0": (
        {"date": 0},
        CREATED,
        "createdDate 1970-01-01T00:00:00+00:00 is outside 2000-01-01 to a day past the "
        "ingest's clock",
    ),
}


@pytest.mark.parametrize(("over", "props", "reason"), REJECTED.values(), ids=REJECTED.keys())
def test_hostile_annotations_are_rejected_with_their_own_reason(jpeg, over, props, reason):
    decoded = decode_message(_annotation(jpeg, **over), props)
    assert isinstance(decoded.event, Rejected)
    assert decoded.event.reason == reason


@pytest.mark.parametrize(
    ("props", "reason"),
    [
        ([("AnnotationStatus", 10)], "application properties are list, not a map"),
        ({"AnnotationStatus": [10]}, "AnnotationStatus is list, not an integer"),
        ({"AnnotationStatus": {"value": 10}}, "AnnotationStatus is dict, not an integer"),
    ],
)
def test_a_list_or_map_where_the_other_belongs_is_named(jpeg, props, reason):
    decoded = decode_message(_annotation(jpeg), props)  # type: ignore[arg-type]
    assert isinstance(decoded.event, Rejected) and decoded.event.reason == reason


def test_a_bulk_status_that_is_not_an_integer_is_rejected():
    decoded = decode_message(pack([["a_1"], 30.0, "v@x", WHEN]), {"AnnotationStatus": 30})
    assert decoded.event == Rejected("status is float 30.0, not an integer", Status.VALIDATED)


ACCEPTED = {
    "status property as its digits": (
        {},
        {"AnnotationStatus": "10"},
        "AnnotationStatus given as text",
    ),
    "status property as AMQP string bytes": (
        {},
        {b"AnnotationStatus": b"10"},
        "AnnotationStatus given as text",
    ),
    "status property by name": (
        {},
        {"AnnotationStatus": b"created"},
        "AnnotationStatus given by name 'created'",
    ),
    "body status that differs": (
        {"status": 20},
        CREATED,
        "body status 20 differs from AnnotationStatus 10",
    ),
    "detections as bytes": (
        {"dets": json.dumps([BOX]).encode()},
        CREATED,
        "detections given as bytes, not a string",
    ),
}


@pytest.mark.parametrize(("over", "props", "note"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_each_remaining_leniency_is_accepted_and_noted(jpeg, over, props, note):
    decoded = decode_message(_annotation(jpeg, **over), props)
    assert isinstance(decoded.event, AnnotationEvent) and decoded.event.status is Status.CREATED
    assert decoded.notes == [note]


@pytest.mark.parametrize(
    ("fields", "note", "email"),
    [
        ([["a_1"]], "bulk status missing", None),
        ([["a_1"], None, "v@x"], "bulk status missing", "v@x"),
        ([["a_1"], 30, 17], "bulk email is int, not a string; ignored", None),
        (
            [["a_1"], 30, None, datetime(1, 1, 1, tzinfo=UTC)],
            "bulk date is .NET's DateTime.MinValue, no date; ignored",
            None,
        ),
        (
            [["a_1"], 30, None, "0001-01-01T00:00:00Z"],
            "bulk date is .NET's DateTime.MinValue, no date; ignored",
            None,
        ),
    ],
)
def test_a_bulk_message_s_leniencies_are_noted(fields, note, email):
    decoded = decode_message(pack(fields), {"AnnotationStatus": 30})
    assert decoded.event == BulkEvent(status=Status.VALIDATED, names=("a_1",), email=email)
    assert decoded.notes == [note]


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


# Bounded work per message (item 4): what a message may ask of the decoder, by count.
LIMITS = MessageLimits(max_boxes=5, max_bulk_names=3)


def test_too_many_boxes_are_refused_before_the_json_is_parsed(jpeg, monkeypatch):
    five = json.dumps([BOX] * 5)
    accepted = decode_message(_annotation(jpeg, dets=five), CREATED, message_limits=LIMITS).event
    assert isinstance(accepted, AnnotationEvent) and len(accepted.detections) == 5
    six = decode_message(
        _annotation(jpeg, dets=json.dumps([BOX] * 6)), CREATED, message_limits=LIMITS
    )
    assert six.event == Rejected("too many boxes: 6 over STREAM_MAX_BOXES (5)", 10, "video7_000123")
    parsed = []
    monkeypatch.setattr(json, "loads", lambda *a, **k: parsed.append(1))
    huge = json.dumps([BOX] * 600_000)  # 25 MB: refused by one scan, never decoded
    event = decode_message(_annotation(jpeg, dets=huge), CREATED, message_limits=LIMITS).event
    assert isinstance(event, Rejected) and event.reason.startswith("too many boxes: over")
    assert not parsed


def test_a_bulk_message_naming_too_many_names_is_refused():
    three = pack([["a", "b", "c"], 30, "val@azaion.com"])
    assert isinstance(
        decode_message(three, {"AnnotationStatus": 30}, message_limits=LIMITS).event, BulkEvent
    )
    four = pack([["a", "b", "c", "d"], 30, "val@azaion.com"])
    event = decode_message(four, {"AnnotationStatus": 30}, message_limits=LIMITS).event
    assert isinstance(event, Rejected)
    assert event.reason == "too many names: 4 over STREAM_MAX_BULK_NAMES (3)"


def test_a_creation_date_a_day_ahead_is_accepted_and_two_days_ahead_refused(jpeg):
    """The window's end follows the ingest's clock: a publisher a little ahead is not refused."""
    ahead = datetime.now(UTC) + timedelta(hours=23)
    decoded = decode_message(_annotation(jpeg, date=ahead), CREATED)
    assert isinstance(decoded.event, AnnotationEvent) and decoded.event.created_date == ahead
    later = ahead + timedelta(days=1)
    event = decode_message(_annotation(jpeg, date=later), CREATED).event
    assert isinstance(event, Rejected)
    assert event.reason.startswith(f"createdDate {later.isoformat()} is outside 2000-01-01")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ([[], 30, "v@x"], "bulk message names no annotation: its list of names is empty"),
        ([["a_1"], 30, "v" * 255], "bulk email longer than 254 bytes"),
        (
            [["a_1"], 30, "v@x", datetime(9999, 1, 1, tzinfo=UTC)],
            "date 9999-01-01T00:00:00+00:00 is outside 2000-01-01 to a day past the ingest's clock",
        ),
    ],
)
def test_a_bulk_message_s_bounds_each_have_their_reason(fields, reason):
    event = decode_message(pack(fields), {"AnnotationStatus": 30}).event
    assert event == Rejected(reason, Status.VALIDATED)
