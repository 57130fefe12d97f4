"""The checks of one message's fields: liberal in what they accept, strict in what they pass.

Each takes a raw value from the msgpack array and returns it checked and normalised, or raises
``Reject`` with a reason a person can act on; leniencies are added to ``notes``. Names become
file names in the data tree, so ``check_name`` refuses anything that could leave its folder.
Numbers are strict (``strict_int``): a bool, a float or text that ``int()`` happens to read would
route or label an annotation in a way the platform never meant, so each is a named rejection.
"""

from __future__ import annotations

import enum
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from azaion_assets.lib.labels.classes import NUM_SLOTS
from azaion_assets.lib.labels.yolo_format import LabelError, check_box
from azaion_assets.lib.stream.events import Detection, Status
from azaion_assets.lib.stream.limits import DEFAULT_MAX_BOXES
from azaion_assets.lib.stream.reject import Reject as Reject

MAX_NAME_BYTES = 200
MAX_MEDIA_NAME_BYTES = 1024  # a video's file name, perhaps with its folders
MAX_EMAIL_BYTES = 254  # the longest address SMTP carries (RFC 5321)
MAX_TICKS = (1 << 63) - 1  # SQLite's largest integer: 29,000 years of 100-ns ticks
# Dates an event may carry: from the year the platform's oldest footage could come from to a day
# past the ingest's own clock (a publisher's clock may run a little ahead, not by years).
EARLIEST_DATE = datetime(2000, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(days=1)


def check_name(name: Any) -> str:
    """An annotation name that is safe as a file name in the data tree."""
    if not isinstance(name, str):
        raise Reject(f"name is {type(name).__name__}, not a string")
    if not name or name in (".", ".."):
        raise Reject("empty name")
    if "/" in name or "\\" in name or ".." in name or "\0" in name:
        raise Reject(f"unsafe name {name!r}: path separators, '..' and NUL are not allowed")
    if name.startswith("."):
        raise Reject(f"unsafe name {name!r}: hidden names are not allowed")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise Reject(f"name longer than {MAX_NAME_BYTES} bytes")
    return name


def parse_date(value: Any, what: str, notes: list[str]) -> datetime:
    """A date in the window ``EARLIEST_DATE`` to a ``CLOCK_SKEW`` past now, in UTC if naive."""
    date = _date(value, what, notes)
    latest = datetime.now(UTC) + CLOCK_SKEW
    if not EARLIEST_DATE <= date <= latest:
        raise Reject(
            f"{what} {date.isoformat()} is outside {EARLIEST_DATE.date()} to a day past the "
            "ingest's clock"
        )
    return date


def _date(value: Any, what: str, notes: list[str]) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        notes.append(f"{what} given as an epoch number")
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise Reject(f"{what} {value!r} is not a representable date") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Reject(f"{what} {value!r} is not a date") from None
        notes.append(f"{what} given as text")
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise Reject(f"{what} is {type(value).__name__}, not a date")


def bounded_text(value: Any, what: str, max_bytes: int) -> str:
    """A string field of at most ``max_bytes`` in UTF-8 (it is kept in the ingest state)."""
    if not isinstance(value, str):
        raise Reject(f"{what} is {described(value)}, not a string")
    if len(value) > max_bytes or len(value.encode("utf-8", "surrogatepass")) > max_bytes:
        raise Reject(f"{what} longer than {max_bytes:,} bytes")
    return value


def media_time(value: Any) -> int:
    """The frame's time in its video: 100-ns ticks from 0, within a 64-bit integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Reject(f"time is {type(value).__name__}, not an integer of 100-ns ticks")
    if value < 0:
        raise Reject(f"time is negative ({int_text(value)} ticks)")
    if value > MAX_TICKS:
        raise Reject(f"time of {int_text(value)} ticks is past a 64-bit integer")
    return value


def described(value: Any) -> str:
    """A value's type, with a short repr for scalars, for reasons ("float 10.9")."""
    name = type(value).__name__
    if isinstance(value, int):
        return f"{name} {int_text(value)}"
    if isinstance(value, (float, str, bytes)):
        return f"{name} {repr(value)[:40]}"
    return name


def int_text(value: int) -> str:
    """An integer for a reason; Python refuses to print one of over 4,300 digits."""
    return str(value) if value.bit_length() <= 64 else f"of {value.bit_length()} bits"


def strict_int(value: Any, what: str) -> int:
    """An integer as msgpack and AMQP carry one: never a bool, a float or text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise Reject(f"{what} is {described(value)}, not an integer")


def text_of(value: str | bytes, what: str) -> str:
    """Text as it arrives: rstream hands AMQP strings over as bytes, and they must be UTF-8."""
    if isinstance(value, str):
        return value
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise Reject(f"{what}: {described(value)} is not UTF-8 text") from None


def exact_decimal(text: str) -> int | None:
    """``text`` as an integer if it is one written exactly ("10": ASCII digits only, no sign,
    space, underscore or leading zero, all of which ``int()`` would take), else None."""
    if text.isascii() and text.isdigit() and len(text) <= 18 and (text == "0" or text[0] != "0"):
        return int(text)
    return None


def parse_enum(kind: type[enum.IntEnum], value: Any, what: str) -> Any:
    number = strict_int(value, what)
    try:
        return kind(number)
    except ValueError:
        raise Reject(f"unknown {what} {int_text(number)}") from None


def parse_detections(
    value: Any, notes: list[str], max_boxes: int = DEFAULT_MAX_BOXES
) -> tuple[Detection, ...]:
    """The boxes of an annotation, at most ``max_boxes``. JSON text is first scanned for opening
    braces: over four a box (a brace may sit inside a string too), it is refused unparsed, so a
    huge list costs one scan, not its decode (4.7 s and 820 MiB for 600,000 boxes)."""
    if isinstance(value, (bytes, bytearray)):
        notes.append("detections given as bytes, not a string")
        value = text_of(bytes(value), "detections")
    if isinstance(value, str):
        if value.count("{") > 4 * max_boxes:
            raise Reject(f"too many boxes: over STREAM_MAX_BOXES ({max_boxes})")
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as exc:
            raise Reject(f"detections are not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise Reject("detections are nested too deeply") from None
        except ValueError:  # an integer past Python's limit on int-string conversion
            limit = sys.get_int_max_str_digits()
            raise Reject(f"detections hold an integer of over {limit} digits") from None
    elif isinstance(value, list):
        notes.append("detections given as an array, not a JSON string")
    if not isinstance(value, list):
        raise Reject(f"detections are {type(value).__name__}, not a list")
    if len(value) > max_boxes:
        raise Reject(f"too many boxes: {len(value)} over STREAM_MAX_BOXES ({max_boxes})")
    boxes = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise Reject(f"detection {i} is {type(item).__name__}, not an object")
        lowered = {str(k).lower(): v for k, v in item.items()}
        if lowered.keys() != item.keys():
            notes.append("detection keys in another case")
        lowered.setdefault("annotation_name", lowered.pop("annotationname", None))
        try:
            det = Detection.model_validate(lowered)
        except ValidationError as exc:
            raise Reject(f"detection {i}: {_first_error(exc, lowered)}") from None
        try:
            check_box(i + 1, det.cls, det.x, det.y, det.w, det.h, NUM_SLOTS)
        except LabelError as exc:
            raise Reject(f"invalid box: {str(exc).replace('line', 'detection', 1)}") from None
        boxes.append(det)
    return tuple(boxes)


def _first_error(exc: ValidationError, given: dict[str, Any]) -> str:
    """The first field error, with what was sent in its place (``cls`` given as bool True)."""
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "missing" or not first["loc"]:
        return f"{where}: {first['msg']}"
    return f"{where}: {first['msg']}, got {described(given.get(str(first['loc'][0])))}"


def image_extension(given: Any, real: str, notes: list[str]) -> str:
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


def named(check, value: Any, status: Status) -> str:
    try:
        return check(value)
    except Reject as exc:
        raise Reject(str(exc), status) from None
