"""Pictures on the asset pages, and beside the model for people without the UI.

The Dagster UI renders a Markdown metadata entry, data-URI images included, when it is opened
(``[Show Markdown]`` on the Events tab). Each materialisation's pictures share one byte budget
(PICTURES_BUDGET_BYTES), since a year of materialisations stays in the instance
(docs/housekeeping.md); the same pictures are written as files under a ``report/`` folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dagster import MetadataValue

from azaion_assets.lib.fsio.atomic import atomic_write_bytes
from azaion_assets.lib.pictures.embed import Picture, Shown, embed, file_bytes

REPORT = "report"


def picture_entry(pictures: Sequence[Picture], budget: int, header: str = "") -> MetadataValue:
    """The pictures as one Markdown entry under ``header``; what did not fit the budget is
    named under them."""
    shown = embed(pictures, budget)
    parts = [header, shown.markdown] if header else [shown.markdown]
    if shown.left_out:
        left = ", ".join(shown.left_out)
        parts.append(f"*Left out to stay within {budget:,} bytes: {left}.*")
    return MetadataValue.md("\n\n".join(parts))


def save_report(folder: Path, name: str, data: bytes) -> Path:
    """``data`` as ``folder/report/name``, written whole or not at all."""
    target = folder / REPORT / name
    target.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(target, data)


def show(
    folder: Path, pictures: Sequence[Shown], budget: int, header: str = "", owns: str = ""
) -> MetadataValue:
    """Each picture saved under ``folder/report/`` and all of them as one metadata entry.
    Files matching the glob ``owns`` that this call did not write are an earlier gallery's,
    and go once the new one is written, so ``report/`` shows the latest."""
    written = {save_report(folder, item.file, file_bytes(item.picture)) for item in pictures}
    if owns:
        for stale in set((folder / REPORT).glob(owns)) - written:
            stale.unlink(missing_ok=True)
    return picture_entry([item.picture for item in pictures], budget, header)
