"""What one stream message may ask of the ingest: the bounds on its image and on its lists.

A message is bounded in bytes (``STREAM_MAX_MESSAGE_BYTES``), but bytes are not work: a 69-byte
PNG can declare 150 million pixels, 25 MB of detections JSON held 600,000 boxes that took
4.7 s and 820 MiB to decode, and a 32 MB PNG of a million tiny chunks took 13 s and 288 MiB to
judge. These bound the work instead: counts checked before it is done, and a time and memory
budget for the image that must be decoded to be judged (``image_judge``).
"""

from __future__ import annotations

from dataclasses import dataclass

from azaion_assets.lib.config.settings import (
    DEFAULT_IMAGE_MEMORY_MB,
    DEFAULT_IMAGE_SECONDS,
    DEFAULT_MAX_BOXES,
    DEFAULT_MAX_BULK_NAMES,
    DEFAULT_MAX_IMAGE_ASPECT,
    DEFAULT_MAX_IMAGE_PIXELS,
    Settings,
)


@dataclass(frozen=True)
class MessageLimits:
    """``STREAM_MAX_IMAGE_PIXELS``, ``STREAM_MAX_IMAGE_ASPECT``, ``STREAM_MAX_BOXES``,
    ``STREAM_MAX_BULK_NAMES``, ``STREAM_IMAGE_SECONDS`` and ``STREAM_IMAGE_MEMORY_MB``."""

    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_aspect: float = DEFAULT_MAX_IMAGE_ASPECT
    max_boxes: int = DEFAULT_MAX_BOXES
    max_bulk_names: int = DEFAULT_MAX_BULK_NAMES
    image_seconds: float = DEFAULT_IMAGE_SECONDS
    image_memory_mb: int = DEFAULT_IMAGE_MEMORY_MB

    @property
    def image_memory(self) -> int:
        return self.image_memory_mb << 20


DEFAULT_LIMITS = MessageLimits()


def message_limits(settings: Settings) -> MessageLimits:
    """The limits the settings give (STREAM_MAX_IMAGE_*, _BOXES, _BULK_NAMES, STREAM_IMAGE_*)."""
    return MessageLimits(
        settings.stream_max_image_pixels,
        settings.stream_max_image_aspect,
        settings.stream_max_boxes,
        settings.stream_max_bulk_names,
        settings.stream_image_seconds,
        settings.stream_image_memory_mb,
    )
