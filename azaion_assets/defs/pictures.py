"""Pictures on the asset pages, and beside the model for people without the UI.

The Dagster UI renders a Markdown metadata entry, data-URI images included, when it is opened
(``[Show Markdown]`` on the Events tab). Each materialisation's pictures share one byte budget,
since a year of materialisations stays in the instance (docs/housekeeping.md); the same
pictures are written as files under the dated model folder's ``report/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dagster import MetadataValue

from azaion_assets.lib.fsio.atomic import atomic_write_bytes
from azaion_assets.lib.pictures.embed import Picture, embed

REPORT = "report"
BUDGET = 1_000_000  # bytes of Markdown, images included, one materialisation carries


def picture_entry(pictures: Sequence[Picture], budget: int = BUDGET) -> MetadataValue:
    """The pictures as one Markdown entry; what did not fit the budget is named under them."""
    shown = embed(pictures, budget)
    text = shown.markdown
    if shown.left_out:
        text += f"\n\n*Left out to stay within {budget:,} bytes: {', '.join(shown.left_out)}.*"
    return MetadataValue.md(text)


def save_report(folder: Path, name: str, data: bytes) -> Path:
    """``data`` as ``folder/report/name``, written whole or not at all."""
    target = folder / REPORT / name
    target.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(target, data)
