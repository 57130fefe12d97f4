"""The Azaion annotation message contract, decoded liberally and validated strictly.

The Azaion platform (a .NET service) publishes each annotation event to a RabbitMQ stream as an
AMQP 1.0 message: the event kind in ``application_properties["AnnotationStatus"]`` and a msgpack
body that is a positional array (see docs/message-contract.md). Decoding never raises: a message
either becomes an ``AnnotationEvent`` or ``BulkEvent``, or a ``Rejected`` carrying the reason,
so one bad message is quarantined and the stream moves on.

Liberal where the platform is ambiguous (and the leniency is recorded in ``notes``): the image
extension with or without its dot, detections as a JSON string or an already-decoded list, dates
as msgpack timestamps, ISO strings or epoch numbers, and a body status that disagrees with the
property (the property wins). Strict where it matters for the data tree: names, roles, statuses,
boxes and image bytes.
"""

from __future__ import annotations

import enum
import io
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgpack
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from azaion_assets.lib.dataset.classes import NUM_SLOTS
from azaion_assets.lib.dataset.labels import LabelError, check_box, format_label
from azaion_assets.lib.stream.client import AMQP_ERROR_PROPERTY

STATUS_PROPERTY = "AnnotationStatus"
MAX_NAME_BYTES = 200
DEFAULT_MAX_MESSAGE_BYTES = 32 << 20
IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif"}


class Status(enum.IntEnum):
    CREATED = 10
    EDITED = 20
    VALIDATED = 30
    DELETED = 40


class Role(enum.IntEnum):
    OPERATOR = 10
    VALIDATOR = 20
    COMPANION_PC = 30
    ADMIN = 40
    API_ADMIN = 1000


class Source(enum.IntEnum):
    AI = 0
    MANUAL = 1


VALIDATOR_ROLES = frozenset({Role.VALIDATOR, Role.ADMIN, Role.API_ADMIN})
ANNOTATION_STATUSES = frozenset({Status.CREATED, Status.EDITED})
BULK_STATUSES = frozenset({Status.VALIDATED, Status.DELETED})


class Detection(BaseModel):
    """One box: centre and size normalised to [0, 1], in the 80-slot class space."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    cls: int
    x: float
    y: float
    w: float
    h: float
    confidence: float | None = None
    annotation_name: str | None = None


class AnnotationEvent(BaseModel):
    """Created (10) or Edited (20): an image with its boxes."""

    model_config = ConfigDict(frozen=True)

    status: Status
    created_date: datetime
    name: str
    original_media_name: str
    time_ticks: int = Field(description="position in the media, in 100-ns ticks")
    image_extension: str = Field(description="with its leading dot, lower case")
    detections: tuple[Detection, ...]
    image: bytes = Field(repr=False)
    created_role: Role
    created_email: str
    source: Source

    @property
    def by_validator(self) -> bool:
        return self.created_role in VALIDATOR_ROLES

    def label_text(self) -> str:
        return format_label([(d.cls, d.x, d.y, d.w, d.h) for d in self.detections])


class BulkEvent(BaseModel):
    """Validated (30) or Deleted (40): a list of annotation names."""

    model_config = ConfigDict(frozen=True)

    status: Status
    names: tuple[str, ...]
    email: str | None = None
    date: datetime | None = None


@dataclass(frozen=True)
class Rejected:
    """A message that cannot be applied, with the reason a person can act on."""

    reason: str
    status: int | None = None
    name: str | None = None


@dataclass
class Decoded:
    """The outcome of decoding one message, plus what leniency it needed."""

    event: AnnotationEvent | BulkEvent | Rejected
    notes: list[str] = field(default_factory=list)


def decode_message(
    body: bytes,
    properties: Mapping[Any, Any] | None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> Decoded:
    """Decode one stream message; never raises for bad input."""
    notes: list[str] = []
    try:
        event = _decode(body, _properties(properties), max_bytes, notes)
    except _Reject as exc:
        event = Rejected(str(exc), exc.status, exc.name)
    except Exception as exc:  # a message must never stop the batch
        # Anything the checks above did not foresee (a library raising on hostile input):
        # still a rejection, with the exception type as the reason.
        event = Rejected(f"decoder error: {type(exc).__name__}: {str(exc)[:200]}")
    return Decoded(event, notes)


class _Reject(Exception):
    def __init__(self, reason: str, status: int | None = None, name: str | None = None):
        super().__init__(reason)
        self.status, self.name = status, name


def _properties(properties: Mapping[Any, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (properties or {}).items():
        out[key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)] = value
    return out


def _decode(body: bytes, props: dict[str, Any], max_bytes: int, notes: list[str]):
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise _Reject(f"body is {type(body).__name__}, not bytes")
    if AMQP_ERROR_PROPERTY in props:
        raise _Reject(f"undecodable AMQP 1.0 message: {props[AMQP_ERROR_PROPERTY]}")
    if len(body) > max_bytes:
        raise _Reject(f"payload of {len(body)} bytes exceeds the {max_bytes}-byte limit")
    status = _status(props, notes)
    try:
        fields = msgpack.unpackb(bytes(body), raw=False, timestamp=3, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise _Reject(f"undecodable msgpack: {type(exc).__name__}: {exc}", status) from None
    if not isinstance(fields, (list, tuple)):
        raise _Reject(f"body is a msgpack {type(fields).__name__}, not an array", status)
    if status in ANNOTATION_STATUSES:
        return _annotation(status, list(fields), notes)
    return _bulk(status, list(fields), notes)


def _status(props: dict[str, Any], notes: list[str]) -> Status:
    raw = props.get(STATUS_PROPERTY)
    if raw is None:
        raise _Reject(f"missing application property {STATUS_PROPERTY}")
    if isinstance(raw, (bytes, str)):
        text = raw.decode() if isinstance(raw, bytes) else raw
        by_name = {s.name.lower(): s for s in Status}
        if text.strip().lower() in by_name:
            notes.append(f"{STATUS_PROPERTY} given by name {text!r}")
            return by_name[text.strip().lower()]
        try:
            raw = int(text)
        except ValueError:
            raise _Reject(f"unknown {STATUS_PROPERTY} {text!r}") from None
        notes.append(f"{STATUS_PROPERTY} given as text")
    try:
        return Status(int(raw))
    except (ValueError, TypeError, OverflowError):
        raise _Reject(f"unknown {STATUS_PROPERTY} {raw!r}") from None


def check_name(name: Any) -> str:
    """An annotation name that is safe as a file name in the data tree."""
    if not isinstance(name, str):
        raise _Reject(f"name is {type(name).__name__}, not a string")
    if not name or name in (".", ".."):
        raise _Reject("empty name")
    if "/" in name or "\\" in name or ".." in name or "\0" in name:
        raise _Reject(f"unsafe name {name!r}: path separators, '..' and NUL are not allowed")
    if name.startswith("."):
        raise _Reject(f"unsafe name {name!r}: hidden names are not allowed")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise _Reject(f"name longer than {MAX_NAME_BYTES} bytes")
    return name


def _date(value: Any, what: str, notes: list[str]) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        notes.append(f"{what} given as an epoch number")
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise _Reject(f"{what} {value!r} is not a representable date") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _Reject(f"{what} {value!r} is not a date") from None
        notes.append(f"{what} given as text")
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise _Reject(f"{what} is {type(value).__name__}, not a date")


def _enum(kind: type[enum.IntEnum], value: Any, what: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Reject(f"{what} is {type(value).__name__}, not an integer")
    try:
        return kind(value)
    except ValueError:
        raise _Reject(f"unknown {what} {value}") from None


def _pil_open():
    """Pillow's own ``Image.open``. Importing Ultralytics replaces it with one that, on bytes
    Pillow cannot identify, tries to install pi-heif from the network (and fails offline)."""
    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    return getattr(patches, "_image_open", Image.open)


def _image_format(image: Any) -> str:
    """The extension for the image's real format; rejects bytes that are not an image."""
    if not isinstance(image, (bytes, bytearray)) or not image:
        raise _Reject("image is missing or not bytes")
    from PIL import Image, UnidentifiedImageError

    try:
        with _pil_open()(io.BytesIO(image)) as img:
            fmt, size = img.format, img.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise _Reject(f"image bytes are not an image ({type(exc).__name__})") from None
    except Image.DecompressionBombError:
        raise _Reject("image declares a decompression-bomb size") from None
    if fmt not in IMAGE_FORMATS or min(size) < 1:
        raise _Reject(f"unsupported image format {fmt}")
    return IMAGE_FORMATS[fmt]


def _detections(value: Any, notes: list[str]) -> tuple[Detection, ...]:
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as exc:
            raise _Reject(f"detections are not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise _Reject("detections are nested too deeply") from None
    elif isinstance(value, list):
        notes.append("detections given as an array, not a JSON string")
    if not isinstance(value, list):
        raise _Reject(f"detections are {type(value).__name__}, not a list")
    boxes = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _Reject(f"detection {i} is not an object")
        lowered = {str(k).lower(): v for k, v in item.items()}
        if lowered.keys() != item.keys():
            notes.append("detection keys in another case")
        lowered.setdefault("annotation_name", lowered.pop("annotationname", None))
        try:
            det = Detection.model_validate(lowered)
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise _Reject(f"detection {i}: {where}: {first['msg']}") from None
        try:
            check_box(i + 1, det.cls, det.x, det.y, det.w, det.h, NUM_SLOTS)
        except LabelError as exc:
            raise _Reject(f"invalid box: {str(exc).replace('line', 'detection', 1)}") from None
        boxes.append(det)
    return tuple(boxes)


ANNOTATION_FIELDS = 11


def _annotation(status: Status, fields: list[Any], notes: list[str]) -> AnnotationEvent:
    if len(fields) < ANNOTATION_FIELDS:
        raise _Reject(
            f"annotation array has {len(fields)} fields, expected {ANNOTATION_FIELDS}", status
        )
    if len(fields) > ANNOTATION_FIELDS:
        notes.append(f"{len(fields) - ANNOTATION_FIELDS} extra trailing fields ignored")
    name = _named(check_name, fields[1], status)
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
        if not isinstance(media, str) or not isinstance(email, str):
            raise _Reject("originalMediaName and createdEmail must be strings")
        if isinstance(ticks, bool) or not isinstance(ticks, int):
            raise _Reject(f"time is {type(ticks).__name__}, not an integer of 100-ns ticks")
        real_ext = _image_format(image)
        event = AnnotationEvent(
            status=status,
            created_date=_date(created, "createdDate", notes),
            name=name,
            original_media_name=media,
            time_ticks=ticks,
            image_extension=_extension(ext, real_ext, notes),
            detections=_detections(dets, notes),
            image=bytes(image),
            created_role=_enum(Role, role, "role"),
            created_email=email,
            source=_enum(Source, source, "source"),
        )
        if body_status != int(status):
            notes.append(
                f"body status {body_status!r} differs from {STATUS_PROPERTY} {int(status)}"
            )
        return event
    except _Reject as exc:
        raise _Reject(str(exc), status, name) from None


def _extension(given: Any, real: str, notes: list[str]) -> str:
    if not isinstance(given, str) or not given.strip():
        notes.append(f"imageExtension missing; using {real} from the image bytes")
        return real
    ext = given.strip().lower()
    if not ext.startswith("."):
        notes.append("imageExtension without its dot")
        ext = "." + ext
    if ext in (".jpeg", ".jpe"):
        ext = ".jpg"
    if ext == ".tiff":
        ext = ".tif"
    if ext != real:
        notes.append(f"imageExtension {given!r} but the bytes are {real}; using {real}")
    return real


def _named(check, value: Any, status: Status) -> str:
    try:
        return check(value)
    except _Reject as exc:
        raise _Reject(str(exc), status) from None


def _bulk(status: Status, fields: list[Any], notes: list[str]) -> BulkEvent:
    if not fields or not isinstance(fields[0], (list, tuple)):
        raise _Reject("bulk message needs a list of names first", status)
    names = tuple(_named(check_name, n, status) for n in fields[0])
    body_status = fields[1] if len(fields) > 1 else None
    if body_status is not None and body_status != int(status):
        notes.append(f"body status {body_status!r} differs from {STATUS_PROPERTY} {int(status)}")
    email = fields[2] if len(fields) > 2 and isinstance(fields[2], str) else None
    date = _date(fields[3], "date", notes) if len(fields) > 3 and fields[3] is not None else None
    return BulkEvent(status=status, names=names, email=email, date=date)


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
