"""What one stream message may ask of the ingest: the bounds on its image and on its lists.

A message is bounded in bytes (``STREAM_MAX_MESSAGE_BYTES``), but bytes are not work: a 69-byte
PNG can declare 150 million pixels, and 25 MB of detections JSON held 600,000 boxes that took
4.7 s and 820 MiB to decode. These bound the work instead, checked before it is done.
"""

from __future__ import annotations

from dataclasses import dataclass

from azaion_assets.lib.config.settings import (
    DEFAULT_MAX_BOXES,
    DEFAULT_MAX_BULK_NAMES,
    DEFAULT_MAX_IMAGE_ASPECT,
    DEFAULT_MAX_IMAGE_PIXELS,
    Settings,
)


@dataclass(frozen=True)
class MessageLimits:
    """``STREAM_MAX_IMAGE_PIXELS``, ``STREAM_MAX_IMAGE_ASPECT``, ``STREAM_MAX_BOXES`` and
    ``STREAM_MAX_BULK_NAMES``."""

    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_aspect: float = DEFAULT_MAX_IMAGE_ASPECT
    max_boxes: int = DEFAULT_MAX_BOXES
    max_bulk_names: int = DEFAULT_MAX_BULK_NAMES


DEFAULT_LIMITS = MessageLimits()


def message_limits(settings: Settings) -> MessageLimits:
    """The limits the settings give (STREAM_MAX_IMAGE_*, _BOXES, _BULK_NAMES)."""
    return MessageLimits(
        settings.stream_max_image_pixels,
        settings.stream_max_image_aspect,
        settings.stream_max_boxes,
        settings.stream_max_bulk_names,
    )
