"""The trainer's reader at the door: an image is accepted only as the trainer will read it.

The trainer reads each stored image with Ultralytics' ``imread`` (``cv2.IMREAD_COLOR``; a TIFF
through ``imdecodemulti``). Pillow's header is not that reader: a PNG with an 8 MB text chunk
passes Pillow and Ultralytics' own check, yet OpenCV returns nothing for it, and a training
fails days later with "Image Not Found". So every image the JPEG walk does not judge
(``image_door``) is read here by the trainer's reader, and accepted only at the size its header
declares. Before that, Pillow's header bounds the work (pixels, aspect, the memory the decode
takes) and refuses what the trainer would read in a way the annotator did not see: an EXIF
orientation (OpenCV turns the image, its boxes stay), more than one frame or page.

Light on purpose: the image judge's child process (``image_judge``) imports this module, the
standard library, Pillow, NumPy and OpenCV, nothing else of the package.
"""

from __future__ import annotations

import io
import struct
import sys
import warnings
from typing import Any, NamedTuple

from azaion_assets.lib.stream import webp_header
from azaion_assets.lib.stream.exif_orientation import EXIF_HEADER, orientation
from azaion_assets.lib.stream.reject import Reject

IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif"}
MIN_SIDE = 10  # Ultralytics' check_image drops an image under 10 pixels a side as corrupt
# Pillow modes OpenCV (the trainer's reader) decodes; it returns nothing for 32-bit int or float.
TRAINER_MODES = frozenset(
    {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB"}
    | {"I;16", "I;16L", "I;16B", "I;16N"}
)
_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
ORIENTATION = 0x0112  # the EXIF tag
DECODE_BYTES_PER_PIXEL = 8  # the decoder's buffer and the BGR image it becomes, 4 bytes each


class Judged(NamedTuple):
    """An accepted image: its real format's extension and its size as the trainer reads it."""

    ext: str
    width: int
    height: int


def read_like_trainer(image: bytes | bytearray, ext: str) -> Any:
    """The array Ultralytics' ``imread(path, cv2.IMREAD_COLOR)`` returns for a file of these
    bytes named ``*<ext>``, or None (a test holds it to the real ``imread``): a TIFF's first
    page if it is in colour, else ``imdecode``; 16-bit samples keep their high byte."""
    import cv2
    import numpy as np

    data = np.frombuffer(image, np.uint8)
    if not data.size:
        return None
    im = None
    if ext == ".tif":
        success, frames = cv2.imdecodemulti(data, cv2.IMREAD_UNCHANGED)
        if success and frames[0].ndim == 3:
            im = frames[0][..., :3]
    if im is None:
        im = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if im is not None and im.dtype == np.uint16:
        im = np.right_shift(im, 8).astype(np.uint8)
    return im[..., None] if im is not None and im.ndim == 2 else im


def judge_decoded(
    image: bytes | bytearray, max_pixels: int, max_aspect: float, memory_bytes: int
) -> Judged:
    """An image that is not a JPEG the walk judges: Pillow's header within the limits, then the
    trainer's reader, which must read it to the header's size."""
    width, height, fmt = _header(image, max_pixels, max_aspect, memory_bytes)
    ext = IMAGE_FORMATS[fmt]
    try:
        im = read_like_trainer(image, ext)
    except MemoryError:
        raise Reject(memory_reason(f"{fmt} {width}x{height}", memory_bytes)) from None
    except Exception as exc:  # cv2.error, for one: OpenCV raises it on hostile data
        reason = f"image unreadable by the trainer's reader (OpenCV): {fmt} ({_brief(exc)})"
        raise Reject(reason) from None
    if im is None:
        raise Reject(f"image unreadable by the trainer's reader (OpenCV): {fmt} {width}x{height}")
    if im.shape[:2] != (height, width):
        read = f"{im.shape[1]}x{im.shape[0]}"
        raise Reject(
            f"image read at another size by the trainer's reader (OpenCV): {fmt} "
            f"{width}x{height} by its header, {read} as read"
        )
    return Judged(ext, width, height)


def _header(
    image: bytes | bytearray, max_pixels: int, max_aspect: float, memory_bytes: int
) -> tuple[int, int, str]:
    """Width, height and format from the header (nothing decoded yet), each judged: a WebP's
    from its chunks (``webp_header``), any other from Pillow's."""
    if webp_header.is_webp(image):
        try:
            webp = webp_header.read(image)
        except webp_header.NotWebP as exc:
            raise Reject(f"image truncated or corrupt: WEBP ({exc})") from None
        mode = "RGBA" if webp.alpha else "RGB"
        _check_kind("WEBP", webp.width, webp.height, mode, max_pixels, max_aspect, memory_bytes)
        _check_frames(webp.frames, "WEBP")
        check_orientation(webp.orientation, "WEBP")
        return webp.width, webp.height, "WEBP"
    return _pil_header(image, max_pixels, max_aspect, memory_bytes)


def _pil_header(
    image: bytes | bytearray, max_pixels: int, max_aspect: float, memory_bytes: int
) -> tuple[int, int, str]:
    from PIL import Image, UnidentifiedImageError

    fmt = None
    try:
        with warnings.catch_warnings(), _pil_open()(io.BytesIO(image)) as img:
            warnings.simplefilter("ignore")  # Pillow warns of each corrupt EXIF tag
            fmt = img.format
            if fmt not in IMAGE_FORMATS:
                raise Reject(f"unsupported image format {fmt}")
            width, height = img.size
            _check_kind(fmt, width, height, img.mode, max_pixels, max_aspect, memory_bytes)
            _check_frames(getattr(img, "n_frames", 1), fmt)
            check_orientation(_orientation(img, image), fmt)
    except Reject:
        raise
    except Image.DecompressionBombError:
        raise Reject(
            "image over STREAM_MAX_IMAGE_PIXELS: Pillow refuses it as a decompression bomb"
        ) from None
    except UnidentifiedImageError:
        raise Reject("image bytes are not an image") from None
    except MemoryError:
        raise Reject(memory_reason(f"{fmt or sniffed(image)} header", memory_bytes)) from None
    except ValueError as exc:
        if "Decompressed" in str(exc):  # Pillow's MAX_TEXT_CHUNK, before the pixels
            raise Reject(
                "image with a compressed text chunk that inflates past 1 MB (PNG): a text bomb, "
                "refused unread"
            ) from None
        raise Reject(
            f"image truncated or corrupt: {fmt or sniffed(image)} ({_brief(exc)})"
        ) from None
    except Exception as exc:  # Pillow raises many types on hostile headers
        raise Reject(
            f"image truncated or corrupt: {fmt or sniffed(image)} ({_brief(exc)})"
        ) from None
    return width, height, fmt


def _check_kind(
    fmt: str,
    width: int,
    height: int,
    mode: str,
    max_pixels: int,
    max_aspect: float,
    memory_bytes: int,
) -> None:
    """Size, mode and the memory the decode takes, from the header."""
    check_size(width, height, max_pixels, max_aspect)
    if mode not in TRAINER_MODES:
        raise Reject(f"unsupported image mode {mode} ({fmt}): OpenCV reads none")
    if fmt == "TIFF" and mode.endswith("A"):
        raise Reject(
            f"unsupported image mode {mode} (TIFF): the trainer's reader (libtiff) multiplies "
            "the colours by the alpha, so it sees other pixels"
        )
    need = width * height * DECODE_BYTES_PER_PIXEL * (2 if mode in _SIXTEEN_BIT else 1)
    if need > memory_bytes:
        raise Reject(memory_reason(f"{fmt} {width}x{height} {mode}", memory_bytes, need))


def _check_frames(frames: int, fmt: str) -> None:
    if frames != 1:
        raise Reject(
            f"image of {frames} frames or pages ({fmt}): the trainer reads one, "
            "the annotator's is unknown"
        )


def _orientation(img: Any, image: bytes | bytearray) -> Any:
    """The EXIF orientation the trainer's reader turns by. A PNG's from its own chunks: Pillow
    reads an ``eXIf`` before the pixels only (and the last of two), libpng one anywhere (the
    first of two); asking Pillow for one after the pixels decodes the whole image first."""
    if img.format != "PNG":
        return img.getexif().get(ORIENTATION)
    found = png_exif(image)
    if len(found) > 1:
        raise Reject(
            f"image with EXIF the door cannot read (PNG): {len(found)} eXIf chunks, which "
            "readers take differently"
        )
    if not found:
        return None
    raw = found[0]
    try:
        return orientation(raw if raw.startswith(EXIF_HEADER) else EXIF_HEADER + raw)
    except ValueError as exc:
        raise Reject(f"image with EXIF the door cannot read (PNG): {exc}") from None


_CHUNK = struct.Struct(">I4s")


def png_exif(image: bytes | bytearray) -> list[bytes]:
    """The bodies of a PNG's ``eXIf`` chunks, wherever they are, up to its end chunk (a chunk
    that runs past the data ends the walk: the decode judges the damage)."""
    found, pos, end = [], 8, len(image)
    while pos + 12 <= end:
        size, kind = _CHUNK.unpack_from(image, pos)
        if kind == b"eXIf":
            found.append(bytes(image[pos + 8 : pos + 8 + size]))
        elif kind == b"IEND":
            break
        pos += 12 + size
    return found


_SIGNATURES = {
    b"\x89PNG": "PNG",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"\xff\xd8": "JPEG",
}


def sniffed(image: bytes | bytearray) -> str:
    """The format its first bytes claim, for a reason where Pillow could not open it."""
    if webp_header.is_webp(image):
        return "WEBP"
    return next((f for sig, f in _SIGNATURES.items() if image.startswith(sig)), "unknown format")


def check_size(width: int, height: int, max_pixels: int, max_aspect: float) -> None:
    """The header's size against the limits and what the trainer reads, before any decoding."""
    size = f"{width}x{height}"
    if width * height > max_pixels:
        raise Reject(
            f"image over STREAM_MAX_IMAGE_PIXELS: {size} is {width * height:,} pixels, "
            f"more than {max_pixels:,}"
        )
    if min(width, height) < MIN_SIDE:
        raise Reject(f"image under {MIN_SIDE} pixels a side: {size} (the trainer drops it)")
    if max(width, height) > max_aspect * min(width, height):
        ratio = max(width, height) / min(width, height)
        raise Reject(
            f"image over STREAM_MAX_IMAGE_ASPECT: {size} is {ratio:.1f}:1, "
            f"more than {max_aspect:g}:1"
        )


_TURNS = {2: "mirrored", 3: "turned 180°", 4: "flipped", 5: "transposed", 6: "turned 90°"}
_TURNS |= {7: "transversed", 8: "turned 270°"}


def check_orientation(orientation: Any, fmt: str) -> None:
    """Refuse an EXIF orientation other than 1: OpenCV turns the image as it reads it, and
    whether the annotator saw it turned (and drew the boxes so) the message does not say.
    Video frames carry none; docs/message-contract.md ("Images")."""
    if orientation is None or orientation == 1:
        return
    how = _TURNS.get(orientation, "of an unknown turn") if isinstance(orientation, int) else ""
    raise Reject(
        f"image with EXIF orientation {orientation!r} ({fmt}): the trainer's reader shows it "
        f"{how or 'in an unknown way'}; the boxes' orientation is unknown"
    )


def memory_reason(what: str, budget: int, need: int | None = None) -> str:
    took = f" takes about {need / 2**20:,.0f} MiB" if need else " ran out of memory"
    return f"image over STREAM_IMAGE_MEMORY_MB: decoding {what}{took}, over {budget >> 20} MiB"


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:80]}" if text else type(exc).__name__


def _pil_open():
    """Pillow's own ``Image.open``. Importing Ultralytics replaces it with one that, on bytes
    Pillow cannot identify, tries to install pi-heif from the network (and fails offline)."""
    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    return getattr(patches, "_image_open", Image.open)
