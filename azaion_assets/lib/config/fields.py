"""The kinds of value a setting holds, and the part of the pipeline that owns each setting.

Constraints live on the field types, so pydantic checks them; ``problem`` words pydantic's
errors as the variable's rule, never echoing the value. The owner decides where an invalid
value is reported: a bad training value fails the training steps and skips the retraining
sensor, and the ingest goes on with the value's default (``load_settings(scopes=...)``).
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, Field

Scheme = Literal["aes-256-cbc", "aes-256-gcm"]  # RELEASE_SCHEME: how the release is encrypted
SCHEMES: tuple[str, ...] = get_args(Scheme)
IMGSZ_STRIDE = 32  # the detector's largest stride: Ultralytics rounds image sizes up to it


class Scope(enum.StrEnum):
    """Parts of the pipeline, each demanding its own variables."""

    TRAINING = "training"
    STREAM = "stream"
    RELEASE = "release"
    HOUSEKEEPING = "housekeeping"


# Who owns a variable, by its prefix; the rest (the data tree) is common to every scope.
_OWNERS: tuple[tuple[tuple[str, ...], Scope], ...] = (
    (("rabbitmq_", "stream_"), Scope.STREAM),
    (("training_", "export_", "dataset_", "retrain_", "monitor_", "k8s_"), Scope.TRAINING),
    (("release_", "model_encryption_", "azaion_api_"), Scope.RELEASE),
    (("keep_", "housekeeping_"), Scope.HOUSEKEEPING),
)


def owner(field: str) -> Scope | None:
    """The scope whose runs use ``field`` (a field name or variable); None: every scope."""
    name = field.lower()
    return next((scope for prefixes, scope in _OWNERS if name.startswith(prefixes)), None)


def prefixes(scope: Scope) -> tuple[str, ...]:
    """The variable prefixes ``scope`` owns (``RABBITMQ_``, ...), as the reference lists them."""
    return tuple(p.upper() for ps, s in _OWNERS if s is scope for p in ps)


def _stride_multiple(value: int) -> int:
    if value % IMGSZ_STRIDE:
        lower = value // IMGSZ_STRIDE * IMGSZ_STRIDE
        upper = lower + IMGSZ_STRIDE
        raise ValueError(
            f"must be a multiple of {IMGSZ_STRIDE} (Ultralytics would silently use {upper}); "
            f"use {lower or IMGSZ_STRIDE} or {upper}"
        )
    return value


AtLeastOne = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]
MoreThanZero = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]  # scores, mAP, tolerances
OpenFraction = Annotated[float, Field(gt=0, lt=1)]
PictureWidth = Annotated[int, Field(ge=64, le=1920)]  # pixels of a thumbnail on the page
AtLeastOneRatio = Annotated[float, Field(ge=1)]  # a long side over a short side
ImageSize = Annotated[int, Field(ge=1), AfterValidator(_stride_multiple)]
TrainingStart = Literal["base", "champion"]  # what a training loads: the base model or the champion


def setting(default: Any = None, *, doc: str, scopes: tuple[Scope, ...] = (), secret=False) -> Any:
    """A field of the schema; ``scopes`` are the parts that require it to be set."""
    extra = {"scopes": [s.value for s in scopes], "secret": secret}
    return Field(default=default, description=doc, json_schema_extra=extra)


def problem(error: Any) -> str:
    """One pydantic error as the rule it broke (``must be at least 1``)."""
    kind = error["type"]
    ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in (error.get("ctx") or {}).items()}
    if kind == "greater_than_equal":
        return "must not be negative" if ctx["ge"] in (0, "0") else f"must be at least {ctx['ge']}"
    if kind == "greater_than":
        return f"must be more than {ctx['gt']}"
    if kind == "less_than":
        return f"must be below {ctx['lt']}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}"
    return error["msg"].removeprefix("Value error, ")


def node_selector(value: str) -> dict[str, str]:
    """``a=b,c=d`` -> ``{"a": "b", "c": "d"}``; empty means no selector."""
    pairs = [p.strip() for p in value.split(",") if p.strip()]
    bad = [p for p in pairs if p.count("=") != 1 or not p.split("=")[0]]
    if bad:
        raise ValueError(f"expected key=value pairs separated by commas, got {', '.join(bad)}")
    return dict(p.split("=") for p in pairs)
