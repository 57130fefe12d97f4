"""The EXIF orientation of a JPEG, read from its APP1 segment without Pillow.

OpenCV turns a JPEG by this tag as it reads it (``cv2.IMREAD_COLOR``), so the door must know it:
a frame tagged 6 is 160x128 by its header and 128x160 to the trainer, its boxes drawn on the
other. Read the way OpenCV's ``ExifReader`` reads it: the TIFF header, then the first IFD's
entries. Anything the reader cannot be sure of is a ``ValueError``, which refuses the image
rather than guess which way the trainer will turn it.
"""

from __future__ import annotations

EXIF_HEADER = b"Exif\x00\x00"
_TAG, _SHORT = 0x0112, 3
_ENTRY = 12
MAX_ENTRIES = 1000  # a camera writes a few dozen


def orientation(segment: bytes) -> int | None:
    """The orientation tag of an APP1 segment's body (``Exif\\0\\0`` and a TIFF structure), or
    None if the first IFD has none; ``ValueError`` if the structure cannot be read."""
    tiff = segment[len(EXIF_HEADER) :]
    order = tiff[:2]
    if order not in (b"II", b"MM"):
        raise ValueError(f"byte order {order!r}, neither II nor MM")
    big = "big" if order == b"MM" else "little"

    def number(at: int, size: int) -> int:
        if at + size > len(tiff):
            raise ValueError(f"the TIFF structure ends at {len(tiff)}, before {at + size}")
        return int.from_bytes(tiff[at : at + size], big)

    if number(2, 2) != 42:
        raise ValueError("no TIFF marker 42")
    first = number(4, 4)
    count = number(first, 2)
    if count > MAX_ENTRIES:
        raise ValueError(f"{count} entries in the first IFD")
    found = None
    for at in range(first + 2, first + 2 + count * _ENTRY, _ENTRY):
        if number(at, 2) != _TAG:
            continue
        kind, many, value = number(at + 2, 2), number(at + 4, 4), number(at + 8, 2)
        if found is not None:
            raise ValueError("two orientation tags")
        if kind != _SHORT or many != 1 or not 1 <= value <= 8:
            raise ValueError(f"orientation tag of type {kind}, count {many}, value {value}")
        found = value
    return found
