"""The events of the Azaion annotation message contract, as the rest of the pipeline sees them.

What a decoded message becomes (``AnnotationEvent``, ``BulkEvent``, or ``Rejected`` with its
reason), with the platform's statuses, roles and sources (docs/message-contract.md). Apart from
the decoder (``contract``), so that code that only builds or applies events reads the types alone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from azaion_assets.lib.labels.yolo_format import format_label
from azaion_assets.lib.stream.trainer_reader import IMAGE_FORMATS as IMAGE_FORMATS

STATUS_PROPERTY = "AnnotationStatus"


class Status(enum.IntEnum):
    CREATED = 10
    EDITED = 20
    VALIDATED = 30
    DELETED = 40


class Role(enum.IntEnum):
    OPERATOR = 10
    VALIDATOR = 20
    COMPANION_PC = 30
    ADMIN = 40
    API_ADMIN = 1000


class Source(enum.IntEnum):
    AI = 0
    MANUAL = 1


VALIDATOR_ROLES = frozenset({Role.VALIDATOR, Role.ADMIN, Role.API_ADMIN})
ANNOTATION_STATUSES = frozenset({Status.CREATED, Status.EDITED})
BULK_STATUSES = frozenset({Status.VALIDATED, Status.DELETED})


class Detection(BaseModel):
    """One box: centre and size normalised to [0, 1], in the 80-slot class space.

    Strict: a class id is a JSON integer (not ``true``, ``1.0`` or ``"1"``), a coordinate a
    JSON number, so that nothing the platform did not mean becomes a box.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    cls: int
    x: float
    y: float
    w: float
    h: float
    confidence: float | None = None
    annotation_name: str | None = None


class AnnotationEvent(BaseModel):
    """Created (10) or Edited (20): an image with its boxes."""

    model_config = ConfigDict(frozen=True)

    status: Status
    created_date: datetime
    name: str
    original_media_name: str
    time_ticks: int = Field(description="position in the media, in 100-ns ticks")
    image_extension: str = Field(description="with its leading dot, lower case")
    detections: tuple[Detection, ...]
    image: bytes = Field(repr=False)
    created_role: Role
    created_email: str
    source: Source

    @property
    def by_validator(self) -> bool:
        return self.created_role in VALIDATOR_ROLES

    def label_text(self) -> str:
        return format_label([(d.cls, d.x, d.y, d.w, d.h) for d in self.detections])


class BulkEvent(BaseModel):
    """Validated (30) or Deleted (40): a list of annotation names."""

    model_config = ConfigDict(frozen=True)

    status: Status
    names: tuple[str, ...]
    email: str | None = None
    date: datetime | None = None


@dataclass(frozen=True)
class Rejected:
    """A message that cannot be applied, with the reason a person can act on.

    ``held``: the event it decoded to, rejected only for an unportable name; the ingest applies
    it after all if every such name is already stored (``portable_names``).
    """

    reason: str
    status: int | None = None
    name: str | None = None
    held: AnnotationEvent | BulkEvent | None = None


@dataclass
class Decoded:
    """The outcome of decoding one message, plus what leniency it needed."""

    event: AnnotationEvent | BulkEvent | Rejected
    notes: list[str] = field(default_factory=list)
