import json
from datetime import UTC, datetime

import pytest

from azaion_assets.dev.synthetic import render
from azaion_assets.lib.stream.contract import decode_message, encode_annotation, encode_bulk, pack
from azaion_assets.lib.stream.events import (
    AnnotationEvent,
    BulkEvent,
    Detection,
    Rejected,
    Role,
    Source,
    Status,
)

WHEN = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    import random

    return render(random.Random(1), 64, 48)[0]


def _fields(jpeg: bytes, **over) -> list:
    base = {
        "date": WHEN,
        "name": "video7_000123",
        "media": "video7.mp4",
        "ticks": 1_230_000_000,
        "ext": ".jpg",
        "dets": json.dumps([{"cls": 20, "x": 0.5, "y": 0.5, "w": 0.2, "h": 0.3}]),
        "image": jpeg,
        "role": 20,
        "email": "val@azaion.com",
        "source": 1,
        "status": 10,
    }
    base.update(over)
    return list(base.values())


def _decode(fields, status=10, props=None, **kw):
    body = fields if isinstance(fields, bytes) else pack(fields)
    return decode_message(body, props if props is not None else {"AnnotationStatus": status}, **kw)


def test_a_created_message_decodes_to_an_event(jpeg):
    decoded = _decode(_fields(jpeg))
    event = decoded.event
    assert isinstance(event, AnnotationEvent) and decoded.notes == []
    assert event.status is Status.CREATED and event.name == "video7_000123"
    assert event.created_date == WHEN and event.time_ticks == 1_230_000_000
    assert event.image == jpeg and event.image_extension == ".jpg"
    assert event.detections == (Detection(cls=20, x=0.5, y=0.5, w=0.2, h=0.3),)
    assert event.created_role is Role.VALIDATOR and event.by_validator
    assert event.source is Source.MANUAL
    assert event.label_text() == "20 0.500000 0.500000 0.200000 0.300000\n"


@pytest.mark.parametrize(
    ("role", "validator"), [(10, False), (20, True), (30, False), (40, True), (1000, True)]
)
def test_roles_that_count_as_validators(jpeg, role, validator):
    event = _decode(_fields(jpeg, role=role)).event
    assert isinstance(event, AnnotationEvent) and event.by_validator is validator


def test_encode_and_decode_round_trip(jpeg):
    event = _decode(_fields(jpeg, status=20), status=20).event
    assert isinstance(event, AnnotationEvent)
    again = decode_message(encode_annotation(event), {"AnnotationStatus": 20}).event
    assert again == event
    bulk = BulkEvent(status=Status.VALIDATED, names=("a", "b"), email="v@x", date=WHEN)
    assert decode_message(encode_bulk(bulk), {"AnnotationStatus": 30}).event == bulk


def test_bulk_messages(jpeg):
    body = pack([["a_1", "b_2"], 40, "admin@azaion.com", WHEN])
    event = decode_message(body, {b"AnnotationStatus": 40}).event
    assert event == BulkEvent(
        status=Status.DELETED, names=("a_1", "b_2"), email="admin@azaion.com", date=WHEN
    )


def test_liberal_where_the_platform_is_ambiguous_and_says_so(jpeg):
    dets = [{"Cls": 1, "X": 0.5, "Y": 0.5, "W": 0.1, "H": 0.1, "Confidence": 0.9}]
    fields = _fields(jpeg, ext="JPG", dets=dets, date="2026-11-24T12:30:00Z", status=20)
    decoded = _decode(fields, props={"AnnotationStatus": "Created"})
    event = decoded.event
    assert isinstance(event, AnnotationEvent)
    assert event.image_extension == ".jpg" and event.created_date == WHEN
    assert event.detections[0].confidence == 0.9
    joined = " | ".join(decoded.notes)
    for seen in (
        "by name",
        "without its dot",
        "as an array",
        "another case",
        "given as text",
        "body status 20 differs",
    ):
        assert seen in joined


@pytest.mark.parametrize(
    ("extra", "note"),
    [(1, "1 extra trailing field ignored"), (2, "2 extra trailing fields ignored")],
)
def test_extra_trailing_fields_are_ignored_and_counted(jpeg, extra, note):
    decoded = _decode([*_fields(jpeg), *[None] * extra])
    assert isinstance(decoded.event, AnnotationEvent) and decoded.notes == [note]


def test_the_real_image_format_wins_over_the_extension(jpeg):
    decoded = _decode(_fields(jpeg, ext=".png"))
    assert isinstance(decoded.event, AnnotationEvent) and decoded.event.image_extension == ".jpg"
    assert any("bytes are .jpg" in n for n in decoded.notes)


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"name": "../etc/passwd"}, "unsafe name"),
        ({"name": "a/b"}, "unsafe name"),
        ({"name": "a\\b"}, "unsafe name"),
        ({"name": "a..b"}, "unsafe name"),
        ({"name": ".hidden"}, "hidden names"),
        ({"name": ""}, "empty name"),
        ({"name": 17}, "name is int"),
        ({"ticks": "soon"}, "not an integer of 100-ns ticks"),
        ({"role": 55}, "unknown role 55"),
        ({"role": "Validator"}, "role is str"),
        ({"source": 7}, "unknown source 7"),
        ({"image": b"GIF89a not really"}, "not an image"),
        ({"image": "text"}, "image is missing or not bytes"),
        ({"dets": "[{"}, "not valid JSON"),
        ({"dets": json.dumps([{"cls": 1, "x": 1.5, "y": 0.5, "w": 0.1, "h": 0.1}])}, "x=1.5"),
        (
            {"dets": json.dumps([{"cls": 85, "x": 0.5, "y": 0.5, "w": 0.1, "h": 0.1}])},
            "class id 85",
        ),
        (
            {"dets": json.dumps([{"cls": 1, "x": 0.95, "y": 0.5, "w": 0.2, "h": 0.1}])},
            "outside the image",
        ),
        (
            {"dets": json.dumps([{"cls": "one", "x": 0.5, "y": 0.5, "w": 0.1, "h": 0.1}])},
            "detection 0: cls",
        ),
        ({"date": [1, 2]}, "not a date"),
    ],
)
def test_invalid_annotations_are_rejected_with_their_reason(jpeg, over, reason):
    rejected = _decode(_fields(jpeg, **over)).event
    assert isinstance(rejected, Rejected)
    assert reason in rejected.reason
    assert rejected.status == 10


def test_rejections_name_the_annotation_when_known(jpeg):
    rejected = _decode(_fields(jpeg, role=55)).event
    assert isinstance(rejected, Rejected) and rejected.name == "video7_000123"


@pytest.mark.parametrize(
    ("body", "props", "reason"),
    [
        (b"\xc1\xc1\xc1", {"AnnotationStatus": 10}, "undecodable msgpack"),
        (pack({"name": "x"}), {"AnnotationStatus": 10}, "not an array"),
        (pack([1, 2, 3]), {"AnnotationStatus": 10}, "has 3 fields, expected 11"),
        (pack([["a"]]), {}, "missing application property"),
        (pack([["a"]]), {"AnnotationStatus": 99}, "unknown AnnotationStatus 99"),
        (pack([["a"]]), {"AnnotationStatus": "Archived"}, "unknown AnnotationStatus"),
        (pack(["a"]), {"AnnotationStatus": 30}, "needs a list of names"),
        (pack([["ok", "../x"]]), {"AnnotationStatus": 40}, "unsafe name"),
        ("not bytes", {"AnnotationStatus": 30}, "body is str"),
    ],
)
def test_malformed_messages_are_rejected_never_raised(body, props, reason):
    rejected = decode_message(body, props).event  # type: ignore[arg-type]
    assert isinstance(rejected, Rejected) and reason in rejected.reason


def test_oversize_payloads_are_rejected_before_decoding(jpeg):
    body = pack(_fields(jpeg))
    rejected = decode_message(body, {"AnnotationStatus": 10}, max_bytes=len(body) - 1).event
    assert isinstance(rejected, Rejected) and "exceeds" in rejected.reason


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    )


@pytest.mark.parametrize(
    ("over", "props", "reason"),
    [
        ({"date": 1e20}, None, "not a representable date"),
        ({"date": -1e18}, None, "not a representable date"),
        ({"date": float("nan")}, None, "not a representable date"),
        ({}, {"AnnotationStatus": float("inf")}, "AnnotationStatus is float inf, not an integer"),
        ({"dets": "[" * 100_000 + "]" * 100_000}, None, "nested too deeply"),
        ({"image": _png_header(60_000, 60_000)}, None, "image"),  # bomb or unidentified
    ],
)
def test_hostile_values_are_rejected_not_raised(jpeg, over, props, reason):
    decoded = _decode(_fields(jpeg, **over), props=props)
    assert isinstance(decoded.event, Rejected) and reason in decoded.event.reason


def test_an_unforeseen_library_error_is_still_a_rejection(jpeg, monkeypatch):
    from azaion_assets.lib.stream import contract

    def explode(*_args, **_kwargs):
        raise RuntimeError("library bug")

    monkeypatch.setattr(contract, "parse_detections", explode)
    decoded = _decode(_fields(jpeg))
    assert isinstance(decoded.event, Rejected)
    assert decoded.event.reason.startswith("decoder error: RuntimeError")


def test_a_non_image_is_named_even_after_ultralytics_patched_pillow(jpeg, monkeypatch, runtime_dir):
    """Ultralytics replaces PIL.Image.open on import; its version tries to install pi-heif from
    the network when Pillow cannot identify the bytes. The decoder must not go through it."""
    import PIL.Image

    from azaion_assets.lib.training.offline import prepare_ultralytics

    prepare_ultralytics(runtime_dir)  # as every process that imports Ultralytics must

    def networked_open(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'pi_heif'")

    import ultralytics.utils.patches as patches

    monkeypatch.setattr(PIL.Image, "open", networked_open)  # what the patch does offline
    assert patches._image_open is not networked_open
    rejected = _decode(_fields(jpeg, image=b"GIF89a not really")).event
    assert isinstance(rejected, Rejected) and "not an image" in rejected.reason
    accepted = _decode(_fields(jpeg)).event
    assert isinstance(accepted, AnnotationEvent)
