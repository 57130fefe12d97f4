"""What one stream message may ask of the ingest: the bounds on its image and on its lists.

A message is bounded in bytes (``STREAM_MAX_MESSAGE_BYTES``), but bytes are not work: a 69-byte
PNG can declare 150 million pixels, and 25 MB of detections JSON held 600,000 boxes that took
4.7 s and 820 MiB to decode. These bound the work instead, checked before it is done.
"""

from __future__ import annotations

from dataclasses import dataclass

# 4096x4096: a 4K frame (3840x2160, 8.3 MP) or a square 4K sensor, with margin; 48 MiB as RGB.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
DEFAULT_MAX_IMAGE_ASPECT = 8.0  # a 16:9 frame is 1.8; a strip of 8:1 is a letterboxed sliver
DEFAULT_MAX_BOXES = 1000  # a dense frame holds tens; Ultralytics keeps at most 300 detections
DEFAULT_MAX_BULK_NAMES = 10_000  # a day's validation by one person, in one message


@dataclass(frozen=True)
class MessageLimits:
    """``STREAM_MAX_IMAGE_PIXELS``, ``STREAM_MAX_IMAGE_ASPECT``, ``STREAM_MAX_BOXES`` and
    ``STREAM_MAX_BULK_NAMES``."""

    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_aspect: float = DEFAULT_MAX_IMAGE_ASPECT
    max_boxes: int = DEFAULT_MAX_BOXES
    max_bulk_names: int = DEFAULT_MAX_BULK_NAMES


DEFAULT_LIMITS = MessageLimits()
