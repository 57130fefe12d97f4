"""Images checked at the door: whole, readable, of bounded size, in a format the trainer reads.

A header alone says nothing of the rest: a JPEG cut in half or a 13000x13000 PNG of 20 KB passes
it, and one such image stalls or kills a training dataloader days later. So the size is judged
from the header first (a decompression bomb is never decompressed), then the image is read to its
end: a JPEG's structure is walked (``jpeg_structure``: a tenth of the cost of decoding it even at
1/8 scale), any other format is decoded. ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` must stay off
(it would pad a cut image; a test checks the trainer's imports leave it off). What this cannot
catch is in docs/message-contract.md ("Images").
"""

from __future__ import annotations

import io
import sys
from typing import Any

from azaion_assets.lib.stream import jpeg_structure
from azaion_assets.lib.stream.events import IMAGE_FORMATS
from azaion_assets.lib.stream.limits import DEFAULT_LIMITS, MessageLimits
from azaion_assets.lib.stream.message_fields import Reject

MIN_SIDE = 10  # Ultralytics' check_image drops an image under 10 pixels a side as corrupt
# Pillow modes OpenCV (the trainer's reader) decodes; it returns nothing for 32-bit int or float.
TRAINER_MODES = frozenset(
    {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB"}
    | {"I;16", "I;16L", "I;16B", "I;16N"}
)
JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}  # by components, as Pillow opens a JPEG


def _pil_open():
    """Pillow's own ``Image.open``. Importing Ultralytics replaces it with one that, on bytes
    Pillow cannot identify, tries to install pi-heif from the network (and fails offline)."""
    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    return getattr(patches, "_image_open", Image.open)


def check_image(image: Any, limits: MessageLimits = DEFAULT_LIMITS) -> str:
    """The extension of the image's real format, once it was read whole within ``limits``."""
    if not isinstance(image, (bytes, bytearray)) or not image:
        raise Reject("image is missing or not bytes")
    if image[:3] == b"\xff\xd8\xff":  # a JPEG, as Pillow identifies one
        seen = jpeg_structure.walk(bytes(image))
        if not seen.unhandled:
            return _judged_jpeg(seen, limits)
    return _decoded(image, limits)


def _judged_jpeg(seen: jpeg_structure.Inspection, limits: MessageLimits) -> str:
    """A JPEG by its walked structure: the frame's size and components first, as from a header
    (``jpeg_structure`` decodes nothing, so there is no bomb to defuse), then its integrity."""
    if seen.size is not None:
        check_size(*seen.size, limits)
        if seen.components not in JPEG_MODES:
            raise Reject(
                f"unsupported image mode: {seen.components} components (JPEG): OpenCV reads none"
            )
    if seen.problem is not None:
        raise Reject(f"image truncated or corrupt: JPEG ({seen.problem})")
    return IMAGE_FORMATS["JPEG"]


def _decoded(image: bytes | bytearray, limits: MessageLimits) -> str:
    """Any other image, or a kind of JPEG the walk does not judge: Pillow reads its header,
    then decodes it whole (a JPEG at 1/8 scale: libjpeg still reads every entropy-coded byte,
    so a cut is caught)."""
    from PIL import Image, UnidentifiedImageError

    fmt = None
    try:
        with _pil_open()(io.BytesIO(image)) as img:
            fmt = img.format
            if fmt not in IMAGE_FORMATS:
                raise Reject(f"unsupported image format {fmt}")
            width, height = img.size
            check_size(width, height, limits)
            if img.mode not in TRAINER_MODES:
                raise Reject(f"unsupported image mode {img.mode} ({fmt}): OpenCV reads none")
            if fmt == "JPEG":
                img.draft(img.mode, (1, 1))  # the smallest scale libjpeg offers
            img.load()
    except Reject:
        raise
    except Image.DecompressionBombError:
        raise Reject(
            "image over STREAM_MAX_IMAGE_PIXELS: Pillow refuses it as a decompression bomb"
        ) from None
    except UnidentifiedImageError:
        raise Reject("image bytes are not an image") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError) as exc:
        detail = f"{type(exc).__name__}: {str(exc)[:80]}"
        raise Reject(f"image truncated or corrupt: {fmt} ({detail})") from None
    return IMAGE_FORMATS[fmt]


def check_size(width: int, height: int, limits: MessageLimits) -> None:
    """The header's size against ``limits`` and what the trainer reads, before any decoding."""
    size = f"{width}x{height}"
    if width * height > limits.max_pixels:
        raise Reject(
            f"image over STREAM_MAX_IMAGE_PIXELS: {size} is {width * height:,} pixels, "
            f"more than {limits.max_pixels:,}"
        )
    if min(width, height) < MIN_SIDE:
        raise Reject(f"image under {MIN_SIDE} pixels a side: {size} (the trainer drops it)")
    if max(width, height) > limits.max_aspect * min(width, height):
        ratio = max(width, height) / min(width, height)
        raise Reject(
            f"image over STREAM_MAX_IMAGE_ASPECT: {size} is {ratio:.1f}:1, "
            f"more than {limits.max_aspect:g}:1"
        )
