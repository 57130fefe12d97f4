"""A JPEG's structure checked to its end marker, without decoding a pixel.

Decoding a JPEG to verify it costs about a millisecond a frame even at 1/8 scale (libjpeg still
Huffman-decodes every block), the whole budget of the ingest. What that decode caught is
structural: data that ends before its end marker, and markers where the entropy-coded data may
hold none (libjpeg resynchronises past flipped bits, see docs/message-contract.md, "Images").
So the segments are walked here, each header checked as libjpeg checks it before it errors, and
each scan's entropy-coded data is crossed with one regular-expression search (C speed) for the
first byte pair that ends it. Measured against the decode in bench/README.md ("Stream ingest").

Only Huffman-coded 8-bit JPEGs (baseline, extended, progressive: the cameras' and encoders'
output) are judged here; ``UNHANDLED`` tells the caller to decode any other kind instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from azaion_assets.lib.stream.exif_orientation import EXIF_HEADER, orientation

# In entropy-coded data 0xFF is followed by 0x00 (a stuffed byte), a restart marker, or more
# 0xFF (fill); any other byte after 0xFF is a marker, which ends the scan.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
SEQUENTIAL, PROGRESSIVE = {0xC0, 0xC1}, {0xC2}  # Huffman-coded frames libjpeg decodes
OTHER_FRAMES = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
SOS, EOI, DHT, DQT, DRI = 0xDA, 0xD9, 0xC4, 0xDB, 0xDD
# Segments libjpeg reads or skips between scans: tables, restart interval, lines, APPn, comment.
_SKIPPED = {0xCC, 0xDC, 0xFE} | set(range(0xE0, 0xF0))
_HUFFMAN_FRAMES = SEQUENTIAL | PROGRESSIVE
_SEGMENTS = _HUFFMAN_FRAMES | OTHER_FRAMES | {SOS, DHT, DQT, DRI} | _SKIPPED
_PARAMETERLESS = {0x01} | set(range(0xD0, 0xD8))  # TEM, RSTn: libjpeg passes them by
MAX_BLOCKS_IN_MCU = 10  # libjpeg's D_MAX_BLOCKS_IN_MCU, for a scan of several components
MAX_SCANS = 100  # a progressive encoder writes about 10; each scan is a pass over the image
# A camera's JPEG has a few dozen markers; a 32 MB message of 4-byte segments has 8 million, and
# walking them in Python would take seconds: the walk stops, and refuses, past this many.
MAX_MARKERS = 5000
APP1 = 0xE1
_NOT_FILL = re.compile(rb"[^\xff]")
UNHANDLED = "unhandled"  # a kind of JPEG this module does not judge: decode it instead


class Damage(ValueError):
    """Why the JPEG cannot be read to its end."""


class Component(NamedTuple):
    across: int  # sampling factors
    down: int
    quant: int  # quantisation table


Frame = dict[int, Component]  # by component id
Tables = dict[tuple[int, int], tuple[bytes, bytes]]  # (class, index) -> (counts, symbols)


@dataclass
class Inspection:
    """What walking a JPEG found: its frame (once reached), and why it is not whole, if so."""

    size: tuple[int, int] | None = None  # width, height: from the frame header
    components: int = 0
    problem: str | None = None  # why it cannot be read to its end; None if it can
    unhandled: bool = False  # a kind this module does not judge: decode it instead
    orientation: int | None = None  # the EXIF orientation tag, if any (``exif_orientation``)
    exif_problem: str | None = None  # why the EXIF cannot be read for sure; None if it can


def walk(data: bytes) -> Inspection:
    """Walk ``data`` to its end marker; never raises for bad input."""
    seen = Inspection()
    try:
        seen.unhandled = _walk_into(data, seen)
    except Damage as exc:
        seen.problem = str(exc)
    return seen


def damage(data: bytes) -> str | None:
    """Why ``data`` is not a whole JPEG; None if it is; ``UNHANDLED`` for a kind not judged."""
    seen = walk(data)
    return UNHANDLED if seen.unhandled else seen.problem


def _walk_into(data: bytes, seen: Inspection) -> bool:
    """Raise ``Damage`` at the first break; True for a kind not judged, False once whole."""
    if data[:2] != b"\xff\xd8":
        raise Damage("no start-of-image marker")
    frame: Frame | None = None
    progressive, scans, pos = False, 0, 2
    huffman: Tables = {}
    quant: set[int] = set()
    exif = False
    for _ in range(MAX_MARKERS):
        code, pos = _marker(data, pos)
        if code == EOI:
            if not scans:
                raise Damage("end marker before any scan")
            return False
        if code in _PARAMETERLESS:
            continue
        if code not in _SEGMENTS:
            raise Damage(f"marker 0xFF{code:02X} where a segment belongs")
        length, end = _segment(data, pos, code)
        body = data[pos + 2 : end]
        if code in _HUFFMAN_FRAMES:
            if frame is not None:
                raise Damage("a second frame header")
            if body[:1] != b"\x08":
                return True  # 12-bit samples: decoded by the caller, if at all
            frame, progressive = _frame(body, seen), code in PROGRESSIVE
        elif code in OTHER_FRAMES:
            return True  # lossless, hierarchical, arithmetic-coded
        elif code == DHT:
            _tables(body, huffman)
        elif code == DQT:
            _quantisation(body, quant)
        elif code == APP1 and not scans and body.startswith(EXIF_HEADER):
            _exif(body, seen, exif)  # read by OpenCV (and Pillow) before the first scan only
            exif = True
        elif code == DRI:
            if length != 4:
                raise Damage(f"restart interval segment of {length} bytes, not 4")
        elif code == SOS:
            if frame is None:
                raise Damage("a scan before the frame header")
            scans += 1
            if scans > MAX_SCANS:
                raise Damage(f"more than {MAX_SCANS} scans")
            _scan(body, frame, progressive, huffman, quant)
            found = _SCAN_END.search(data, end)
            if found is None:
                raise Damage("data ends inside a scan, before the end marker")
            pos = found.start()
            continue
        pos = end
    raise Damage(f"more than {MAX_MARKERS} markers")


def _exif(body: bytes, seen: Inspection, again: bool) -> None:
    """The orientation of an EXIF segment, or why it cannot be known for sure."""
    if again:
        seen.exif_problem = "two EXIF segments, which readers take differently"
        return
    try:
        seen.orientation = orientation(body)
    except ValueError as exc:
        seen.exif_problem = str(exc)


def _marker(data: bytes, pos: int) -> tuple[int, int]:
    """The marker code at ``pos`` (after any 0xFF fill bytes) and the position after it."""
    if pos >= len(data):
        raise Damage("data ends before the end marker")
    if data[pos] != 0xFF:
        raise Damage(f"byte 0x{data[pos]:02X} at {pos} where a marker belongs")
    code = _NOT_FILL.search(data, pos)  # past any fill bytes, at C speed
    if code is None:
        raise Damage("data ends before the end marker")
    return data[code.start()], code.start() + 1


def _segment(data: bytes, pos: int, code: int) -> tuple[int, int]:
    """A segment's declared length and where it ends; it must fit in the data."""
    if pos + 2 > len(data):
        raise Damage("data ends inside a segment header")
    length = int.from_bytes(data[pos : pos + 2], "big")
    if length < 2:
        raise Damage(f"segment 0xFF{code:02X} of length {length}")
    if pos + length > len(data):
        raise Damage(f"data ends inside segment 0xFF{code:02X}")
    return length, pos + length


def _frame(body: bytes, seen: Inspection) -> Frame:
    """The components of a frame header (SOFn), checked as libjpeg's ``get_sof`` does; its
    size and component count go to ``seen``."""
    if len(body) < 6:
        raise Damage("frame header too short")
    height, width, count = (
        int.from_bytes(body[1:3], "big"),
        int.from_bytes(body[3:5], "big"),
        body[5],
    )
    if not (height and width and count):
        raise Damage(f"empty frame: {width}x{height}, {count} components")
    seen.size, seen.components = (width, height), count
    if len(body) != 6 + 3 * count:
        raise Damage(f"frame header of {len(body) + 2} bytes for {count} components")
    frame = {}
    for i in range(6, len(body), 3):
        part = Component(body[i + 1] >> 4, body[i + 1] & 15, body[i + 2])
        if not (1 <= part.across <= 4 and 1 <= part.down <= 4):
            raise Damage(f"component {body[i]} has sampling factors {part.across}x{part.down}")
        frame[body[i]] = part
    widest = max(p.across for p in frame.values())
    tallest = max(p.down for p in frame.values())
    if any(widest % p.across or tallest % p.down for p in frame.values()):
        raise Damage("fractional sampling factors, which libjpeg does not decode")
    return frame


def _tables(body: bytes, huffman: Tables) -> None:
    """Huffman tables (DHT), checked as libjpeg's ``get_dht``: index, counts, length."""
    i = 0
    while i < len(body):
        if i + 17 > len(body):
            raise Damage("Huffman table segment ends inside a table")
        kind, counts = body[i], body[i + 1 : i + 17]
        if kind & 15 > 3 or kind >> 4 > 1:
            raise Damage(f"Huffman table index 0x{kind:02X}")
        symbols = sum(counts)
        if symbols > 256 or i + 17 + symbols > len(body):
            raise Damage(f"Huffman table 0x{kind:02X} with {symbols} symbols")
        huffman[(kind >> 4, kind & 15)] = (counts, body[i + 17 : i + 17 + symbols])
        i += 17 + symbols


def _quantisation(body: bytes, quant: set[int]) -> None:
    """Quantisation tables (DQT): index, precision and length as libjpeg's ``get_dqt``."""
    i = 0
    while i < len(body):
        index, wide = body[i] & 15, body[i] >> 4
        if index > 3 or wide > 1:
            raise Damage(f"quantisation table 0x{body[i]:02X}")
        i += 1 + 64 * (1 + wide)
        if i > len(body):
            raise Damage("quantisation table segment ends inside a table")
        quant.add(index)


def _scan(
    body: bytes,
    frame: Frame,
    progressive: bool,
    huffman: Tables,
    quant: set[int],
) -> None:
    """A scan header (SOS), checked as libjpeg checks it before reading the scan's data."""
    count = body[0] if body else 0
    if not 1 <= count <= 4 or len(body) != 4 + 2 * count:
        raise Damage(f"scan header of {len(body) + 2} bytes for {count} components")
    parts = [(body[1 + 2 * k], body[2 + 2 * k]) for k in range(count)]
    ss, se, ah, al = body[-3], body[-2], body[-1] >> 4, body[-1] & 15
    named = set()
    for ident, tables in parts:
        if ident not in frame or ident in named:
            raise Damage(f"scan names component {ident}, not one of the frame's")
        named.add(ident)
        if frame[ident].quant not in quant:
            raise Damage(f"component {ident} uses quantisation table {frame[ident].quant}, unset")
        if not progressive or (ss == 0 and ah == 0):  # DC codes: sequential, or a first DC pass
            _usable(huffman, 0, tables >> 4, progressive)
        if not progressive or ss != 0:  # AC codes: sequential, or any AC pass
            _usable(huffman, 1, tables & 15, progressive)
    blocks = sum(frame[i].across * frame[i].down for i in named)
    if count > 1 and blocks > MAX_BLOCKS_IN_MCU:
        raise Damage(f"a scan of {blocks} blocks per unit, more than {MAX_BLOCKS_IN_MCU}")
    if progressive:
        dc = ss == 0
        if (dc and se != 0) or (not dc and (ss > se or se > 63 or count != 1)):
            raise Damage(f"bad progression: spectral selection {ss}-{se} over {count} components")
        if (ah != 0 and al != ah - 1) or al > 13:
            raise Damage(f"bad progression: successive approximation {ah}/{al}")


def _usable(huffman: Tables, kind: int, index: int, progressive: bool) -> None:
    """A table a scan uses builds a prefix code, as libjpeg's ``jpeg_make_d_derived_tbl``
    requires. A sequential JPEG may leave out tables 0 and 1: libjpeg-turbo has standard ones
    (for Motion JPEG), but not for progressive JPEGs."""
    table = huffman.get((kind, index))
    if table is None:
        if progressive or index > 1:
            raise Damage(f"scan uses Huffman table {kind}/{index}, never defined")
        return
    counts, symbols = table
    if kind == 0 and max(symbols, default=0) > 15:
        raise Damage(f"DC Huffman table {index} has a symbol over 15")
    code = 0
    for bits, n in enumerate(counts, start=1):
        code += n
        if code and code >= 1 << bits:
            raise Damage(f"Huffman table {kind}/{index} is not a prefix code")
        code <<= 1
