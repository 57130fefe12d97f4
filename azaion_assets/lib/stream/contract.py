"""The Azaion annotation message contract, decoded liberally and validated strictly.

The Azaion platform (a .NET service) publishes each annotation event to a RabbitMQ stream as an
AMQP 1.0 message: the event kind in ``application_properties["AnnotationStatus"]`` and a msgpack
body that is a positional array (see docs/message-contract.md). Decoding never raises: a message
either becomes an ``AnnotationEvent`` or ``BulkEvent``, or a ``Rejected`` carrying the reason,
so one bad message is quarantined and the stream moves on.

Liberal where the platform is ambiguous (and the leniency is recorded in ``notes``): the status
property as its exact digits or its name, the image extension with or without its dot,
detections as a JSON string or an already-decoded list, dates as msgpack timestamps, ISO strings
or epoch numbers, and a body status that disagrees with the property (the property wins). Strict
where it matters for the data tree: names (safe, and portable: ``portable_names``), images
(read whole within ``message_limits``, see ``image_door``), numbers (a status, role or class id
is an integer: never a bool, a float or text that ``int()`` happens to read) and boxes, judged
as their label line will be written. The events are ``events``; each field's check is
``message_fields``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgpack

from azaion_assets.lib.stream.client import AMQP_ERROR_PROPERTY
from azaion_assets.lib.stream.events import (
    ANNOTATION_STATUSES,
    STATUS_PROPERTY,
    AnnotationEvent,
    BulkEvent,
    Decoded,
    Rejected,
    Role,
    Source,
    Status,
)
from azaion_assets.lib.stream.image_door import check_image
from azaion_assets.lib.stream.image_judge import ImageJudge, JudgeError
from azaion_assets.lib.stream.limits import DEFAULT_LIMITS, MessageLimits
from azaion_assets.lib.stream.message_fields import (
    MAX_EMAIL_BYTES,
    MAX_MEDIA_NAME_BYTES,
    Reject,
    bounded_text,
    check_name,
    exact_decimal,
    image_extension,
    int_text,
    media_time,
    named,
    parse_date,
    parse_detections,
    parse_enum,
    strict_int,
    text_of,
)
from azaion_assets.lib.stream.portable_names import held_back
from azaion_assets.lib.text import plural

DEFAULT_MAX_MESSAGE_BYTES = 32 << 20


def decode_message(
    body: bytes,
    properties: Mapping[Any, Any] | None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    message_limits: MessageLimits = DEFAULT_LIMITS,
    judge: ImageJudge | None = None,
) -> Decoded:
    """Decode one stream message; never raises for bad input. ``judge`` decodes the images
    the JPEG walk does not judge, within the limits' budget (``image_door``); ``JudgeError``
    if it cannot be run at all."""
    notes: list[str] = []
    try:
        props = _properties(properties)
        event = held_back(_decode(body, props, max_bytes, message_limits, notes, judge))
    except Reject as exc:
        event = Rejected(str(exc), exc.status, exc.name)
    except JudgeError:
        raise  # not a verdict on the message: no image could be judged, so the run fails
    except Exception as exc:  # a message must never stop the batch
        # Anything the checks above did not foresee (a library raising on hostile input):
        # still a rejection, with the exception type as the reason.
        event = Rejected(f"decoder error: {type(exc).__name__}: {str(exc)[:200]}")
    return Decoded(event, notes)


def _properties(properties: Mapping[Any, Any] | None) -> dict[str, Any]:
    if properties is not None and not isinstance(properties, Mapping):
        # an AMQP application-properties section that holds a list, not a map
        raise Reject(f"application properties are {type(properties).__name__}, not a map")
    out: dict[str, Any] = {}
    for key, value in (properties or {}).items():
        out[key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)] = value
    return out


def _decode(
    body: bytes,
    props: dict[str, Any],
    max_bytes: int,
    limits: MessageLimits,
    notes: list[str],
    judge: ImageJudge | None,
):
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise Reject(f"body is {type(body).__name__}, not bytes")
    if AMQP_ERROR_PROPERTY in props:
        raise Reject(f"undecodable AMQP 1.0 message: {props[AMQP_ERROR_PROPERTY]}")
    if len(body) > max_bytes:
        raise Reject(f"payload of {plural(len(body), 'byte')} exceeds the {max_bytes}-byte limit")
    status = _status(props, notes)
    try:
        fields = msgpack.unpackb(bytes(body), raw=False, timestamp=3, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise Reject(f"undecodable msgpack: {type(exc).__name__}: {exc}", status) from None
    if not isinstance(fields, (list, tuple)):
        raise Reject(f"body is a msgpack {type(fields).__name__}, not an array", status)
    if status in ANNOTATION_STATUSES:
        return _annotation(status, list(fields), limits, notes, judge)
    return _bulk(status, list(fields), limits, notes)


_STATUS_NAMES = {s.name.lower(): s for s in Status}


def _status(props: dict[str, Any], notes: list[str]) -> Status:
    """The property as an integer, or as text: its exact decimal digits or a status name."""
    raw = props.get(STATUS_PROPERTY)
    if raw is None:
        raise Reject(f"missing application property {STATUS_PROPERTY}")
    if not isinstance(raw, (bytes, str)):
        return parse_enum(Status, raw, STATUS_PROPERTY)
    text = text_of(raw, STATUS_PROPERTY)
    number = exact_decimal(text)
    if number is not None:
        notes.append(f"{STATUS_PROPERTY} given as text")
        return parse_enum(Status, number, STATUS_PROPERTY)
    if text.strip().lower() in _STATUS_NAMES:
        notes.append(f"{STATUS_PROPERTY} given by name {text!r}")
        return _STATUS_NAMES[text.strip().lower()]
    raise Reject(
        f"unknown {STATUS_PROPERTY} {text[:40]!r}: neither a status name nor its decimal digits"
    )


def _body_status(value: Any, status: Status, notes: list[str]) -> None:
    """The body repeats the property: an integer, and the property wins if they differ."""
    if strict_int(value, "status") != status:
        notes.append(f"body status {int_text(value)} differs from {STATUS_PROPERTY} {int(status)}")


ANNOTATION_FIELDS = 11


def _annotation(
    status: Status,
    fields: list[Any],
    limits: MessageLimits,
    notes: list[str],
    judge: ImageJudge | None,
) -> AnnotationEvent:
    if len(fields) < ANNOTATION_FIELDS:
        raise Reject(
            f"annotation array has {plural(len(fields), 'field')}, expected {ANNOTATION_FIELDS}",
            status,
        )
    if len(fields) > ANNOTATION_FIELDS:
        extra = plural(len(fields) - ANNOTATION_FIELDS, "extra trailing field")
        notes.append(f"{extra} ignored")
    name = named(check_name, fields[1], status)
    try:
        created, media, ticks, ext, dets, image, role, email, source, body_status = (
            fields[0],
            fields[2],
            fields[3],
            fields[4],
            fields[5],
            fields[6],
            fields[7],
            fields[8],
            fields[9],
            fields[10],
        )
        media = bounded_text(media, "originalMediaName", MAX_MEDIA_NAME_BYTES)
        email = bounded_text(email, "createdEmail", MAX_EMAIL_BYTES)
        ticks = media_time(ticks)
        real_ext = check_image(image, limits, judge)
        event = AnnotationEvent(
            status=status,
            created_date=parse_date(created, "createdDate", notes),
            name=name,
            original_media_name=media,
            time_ticks=ticks,
            image_extension=image_extension(ext, real_ext, notes),
            detections=parse_detections(dets, notes, limits.max_boxes),
            image=bytes(image),
            created_role=parse_enum(Role, role, "role"),
            created_email=email,
            source=parse_enum(Source, source, "source"),
        )
        _body_status(body_status, status, notes)
        return event
    except Reject as exc:
        raise Reject(str(exc), status, name) from None


def _bulk(status: Status, fields: list[Any], limits: MessageLimits, notes: list[str]) -> BulkEvent:
    if not fields or not isinstance(fields[0], (list, tuple)):
        raise Reject("bulk message needs a list of names first", status)
    if not fields[0]:
        raise Reject("bulk message names no annotation: its list of names is empty", status)
    if len(fields[0]) > limits.max_bulk_names:
        raise Reject(
            f"too many names: {len(fields[0])} over STREAM_MAX_BULK_NAMES "
            f"({limits.max_bulk_names})",
            status,
        )
    names = tuple(named(check_name, n, status) for n in fields[0])
    try:
        if len(fields) > 1 and fields[1] is not None:
            _body_status(fields[1], status, notes)
        else:
            notes.append("bulk status missing")
        email = fields[2] if len(fields) > 2 else None
        if email is not None and not isinstance(email, str):
            notes.append(f"bulk email is {type(email).__name__}, not a string; ignored")
            email = None
        if email is not None:
            email = bounded_text(email, "bulk email", MAX_EMAIL_BYTES)
        has_date = len(fields) > 3 and fields[3] is not None
        if has_date and _min_value(fields[3]):
            notes.append("bulk date is .NET's DateTime.MinValue, no date; ignored")
            has_date = False
        date = parse_date(fields[3], "date", notes) if has_date else None
    except Reject as exc:
        raise Reject(str(exc), status) from None
    return BulkEvent(status=status, names=names, email=email, date=date)


_MIN_VALUE = datetime(1, 1, 1)


def _min_value(value: Any) -> bool:
    """Whether a date is .NET's ``DateTime.MinValue``, a ``default(DateTime)``: no date, for an
    optional field (a bulk message's); ``createdDate`` must be a real one."""
    if isinstance(value, str):
        return value.rstrip("Z").split("+")[0] in ("0001-01-01T00:00:00", "0001-01-01 00:00:00")
    return isinstance(value, datetime) and value.replace(tzinfo=None) == _MIN_VALUE


def pack(fields: Any) -> bytes:
    """msgpack with timestamps for datetimes, as the .NET publisher writes them."""
    packed = msgpack.packb(fields, datetime=True)
    assert packed is not None  # None only for streaming packers
    return packed


def encode_annotation(event: AnnotationEvent) -> bytes:
    """The msgpack body the Azaion platform sends for ``event`` (publisher and tests)."""
    detections = json.dumps(
        [d.model_dump(exclude_none=True) for d in event.detections], separators=(",", ":")
    )
    return pack(
        [
            event.created_date,
            event.name,
            event.original_media_name,
            event.time_ticks,
            event.image_extension,
            detections,
            event.image,
            int(event.created_role),
            event.created_email,
            int(event.source),
            int(event.status),
        ],
    )


def encode_bulk(event: BulkEvent) -> bytes:
    return pack([list(event.names), int(event.status), event.email, event.date])
