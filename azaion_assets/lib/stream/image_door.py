"""Images checked at the door: whole, of bounded size and work, read as the trainer reads them.

A header alone says nothing of the rest: a JPEG cut in half or a 13000x13000 PNG of 20 KB passes
it, and one such image stalls or kills a training dataloader days later. So the size is judged
from the header first (a decompression bomb is never decompressed), then the image is read to its
end. A plain JPEG, nearly every frame, has its structure walked in the ingest's own process
(``jpeg_structure``: a tenth of the cost of decoding it even at 1/8 scale), its EXIF orientation
included; any other image is decoded by the trainer's own reader (``trainer_reader``), in the
image judge's child process within a time and memory budget (``image_judge``), and accepted only
at the size its header declares. ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` must stay off (a test
checks the trainer's imports leave it off). What this cannot catch is in
docs/message-contract.md ("Images").
"""

from __future__ import annotations

from typing import Any

from azaion_assets.lib.stream import jpeg_structure
from azaion_assets.lib.stream.image_judge import ImageJudge
from azaion_assets.lib.stream.limits import DEFAULT_LIMITS, MessageLimits
from azaion_assets.lib.stream.reject import Reject
from azaion_assets.lib.stream.trainer_reader import (
    IMAGE_FORMATS,
    Judged,
    check_orientation,
    check_size,
    judge_decoded,
)

JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}  # by components, as Pillow opens a JPEG


def check_image(
    image: Any, limits: MessageLimits = DEFAULT_LIMITS, judge: ImageJudge | None = None
) -> str:
    """The extension of the image's real format, once it was read whole within ``limits``."""
    return judge_image(image, limits, judge).ext


def judge_image(
    image: Any, limits: MessageLimits = DEFAULT_LIMITS, judge: ImageJudge | None = None
) -> Judged:
    """The image's format and size as the trainer reads it; raises ``Reject`` with the reason.

    ``judge`` decodes what the JPEG walk does not judge, within the limits' time and memory
    budget; without one (tools, tests) it is decoded here, bounded by the memory estimate only.
    """
    if not isinstance(image, (bytes, bytearray)) or not image:
        raise Reject("image is missing or not bytes")
    if image[:3] == b"\xff\xd8\xff":  # a JPEG, as Pillow identifies one
        seen = jpeg_structure.walk(bytes(image))
        if not seen.unhandled:
            return _judged_jpeg(seen, limits)
    if judge is not None:
        return judge.judge(image, limits.max_pixels, limits.max_aspect)
    return judge_decoded(image, limits.max_pixels, limits.max_aspect, limits.image_memory)


def _judged_jpeg(seen: jpeg_structure.Inspection, limits: MessageLimits) -> Judged:
    """A JPEG by its walked structure: the frame's size and components first, as from a header
    (``jpeg_structure`` decodes nothing, so there is no bomb to defuse), then its EXIF
    orientation, then its integrity."""
    if seen.size is not None:
        check_size(*seen.size, limits.max_pixels, limits.max_aspect)
        if seen.components not in JPEG_MODES:
            raise Reject(
                f"unsupported image mode: {seen.components} components (JPEG): OpenCV reads none"
            )
    if seen.exif_problem is not None:
        raise Reject(f"image with EXIF the door cannot read (JPEG): {seen.exif_problem}")
    check_orientation(seen.orientation, "JPEG")
    if seen.problem is not None:
        raise Reject(f"image truncated or corrupt: JPEG ({seen.problem})")
    assert seen.size is not None  # a whole JPEG has its frame
    return Judged(IMAGE_FORMATS["JPEG"], *seen.size)
