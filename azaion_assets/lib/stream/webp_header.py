"""A WebP's header read from its RIFF chunks, without Pillow.

Pillow opens a WebP through libwebp's animation decoder, which sets up a whole canvas before a
pixel is asked for: a 4096x4096 lossless WebP cost 287 MiB to open and load, more than twice what
OpenCV needs to read it. The header the door needs (size, alpha, frames, EXIF orientation) is in
the first chunks, so it is read here: the simple formats' frame headers (``VP8 ``, ``VP8L``), the
extended one's canvas (``VP8X``), and the chunks after it, at most ``MAX_CHUNKS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from azaion_assets.lib.stream.exif_orientation import EXIF_HEADER, orientation

MAX_CHUNKS = 1000  # a still image has a handful; an animation one per frame, and is refused
_ANIMATION, _ALPHA = 0x02, 0x10  # VP8X flags


class NotWebP(ValueError):
    """The bytes do not hold a WebP header that can be read to its end."""


@dataclass(frozen=True)
class WebPHeader:
    width: int
    height: int
    alpha: bool
    frames: int  # 1 for a still image
    orientation: int | None  # the EXIF tag, if an EXIF chunk holds one


def is_webp(data: bytes | bytearray) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def read(data: bytes | bytearray) -> WebPHeader:
    """The header of a WebP; ``NotWebP`` with the reason if it cannot be read."""
    chunks = list(_chunks(data))
    if not chunks:
        raise NotWebP("no chunks")
    kind, body = chunks[0]
    if kind == b"VP8 ":
        width, height = _lossy(body)
        return WebPHeader(width, height, False, 1, None)
    if kind == b"VP8L":
        width, height, alpha = _lossless(body)
        return WebPHeader(width, height, alpha, 1, None)
    if kind != b"VP8X":
        raise NotWebP(f"first chunk {kind!r}, not VP8, VP8L or VP8X")
    if len(body) < 10:
        raise NotWebP("VP8X chunk too short")
    flags = body[0]
    width = int.from_bytes(body[4:7], "little") + 1
    height = int.from_bytes(body[7:10], "little") + 1
    frames = sum(1 for k, _ in chunks if k == b"ANMF") if flags & _ANIMATION else 1
    if not any(k in (b"VP8 ", b"VP8L", b"ANMF") for k, _ in chunks):
        raise NotWebP("no image data")
    exif = next((b for k, b in chunks if k == b"EXIF"), None)
    turn = None
    if exif is not None:
        try:
            turn = orientation(exif if exif.startswith(EXIF_HEADER) else EXIF_HEADER + exif)
        except ValueError as exc:
            raise NotWebP(f"EXIF: {exc}") from None
    return WebPHeader(width, height, bool(flags & _ALPHA), frames, turn)


def _chunks(data: bytes | bytearray):
    """(fourcc, body) of each chunk, checked to fit the RIFF size and the data."""
    if not is_webp(data):
        raise NotWebP("no RIFF WEBP signature")
    end = 8 + int.from_bytes(data[4:8], "little")
    if end > len(data):
        raise NotWebP(f"RIFF size {end - 8} past the data's {len(data) - 8}")
    pos = 12
    for _ in range(MAX_CHUNKS):
        if pos + 8 > end:
            return
        kind, size = bytes(data[pos : pos + 4]), int.from_bytes(data[pos + 4 : pos + 8], "little")
        if pos + 8 + size > end:
            raise NotWebP(f"chunk {kind!r} of {size} bytes runs past the RIFF data")
        yield kind, bytes(data[pos + 8 : pos + 8 + size])
        pos += 8 + size + (size & 1)
    raise NotWebP(f"more than {MAX_CHUNKS} chunks")


def _lossy(body: bytes) -> tuple[int, int]:
    if len(body) < 10 or body[3:6] != b"\x9d\x01\x2a" or body[0] & 1:
        raise NotWebP("VP8 chunk without a key frame header")
    return (
        int.from_bytes(body[6:8], "little") & 0x3FFF,
        int.from_bytes(body[8:10], "little") & 0x3FFF,
    )


def _lossless(body: bytes) -> tuple[int, int, bool]:
    if len(body) < 5 or body[0] != 0x2F:
        raise NotWebP("VP8L chunk without its signature")
    bits = int.from_bytes(body[1:5], "little")
    if bits >> 29:
        raise NotWebP(f"VP8L version {bits >> 29}")
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)
