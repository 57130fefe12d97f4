"""Names that look alike: the Unicode confusable skeleton (TR39), from ICU.

``case_0001`` spelt with a Cyrillic es and a (U+0441, U+0430), in full-width letters (U+FF43
...) or ``cose`` with a Greek omicron (U+03BF) read as the Latin names: stored beside them, they
are the same frame twice under names nobody can tell apart, a duplicate that may land in two
splits. TR39's skeleton maps each character to its prototype (U+0441 to ``c``, ``0`` to ``O``);
two names with one skeleton look alike. The mapping is ICU's (``icu.SpoofChecker``, PyICU
against the system's ICU), which keeps Unicode's confusables data current with each ICU
release: no hand list to go stale. The ingest state records the Unicode version of the
skeletons it holds and computes them anew when it changes (``ingest_state``).

``look`` is the key, over ``portable_names.fold`` so that case and normal form collide too.
Two names that are both plain ASCII collide only by case: the platform's own names are ASCII
``<video>_<time>``, where the skeleton would confuse ``rn`` with ``m`` and ``1`` with ``l``,
distinct names it does send; a look-alike that passes for another needs a non-ASCII character.
"""

from __future__ import annotations

import difflib
import functools
import unicodedata
from typing import Any

from azaion_assets.lib.stream.portable_names import fold


@functools.cache
def _icu() -> Any:
    """PyICU (its stubs do not name what its C extension exports)."""
    import icu

    return icu


@functools.cache
def _checker() -> Any:
    return _icu().SpoofChecker()


LOOK_VERSION = 1  # of ``look`` and ``portable_names.fold``: raise it when either changes


def unicode_version() -> str:
    """What the stored looks depend on: this code's version and the Unicode version of the
    confusables data the skeletons come from."""
    return f"look {LOOK_VERSION}, Unicode {_icu().UNICODE_VERSION} (ICU {_icu().ICU_VERSION})"


def look(name: str) -> str:
    """The key under which names that look alike collide: the TR39 skeleton of the fold."""
    return _checker().getSkeleton(0, fold(name))


def confusable(new: str, stored: str) -> bool:
    """Whether ``new`` may not be stored beside ``stored``, given they share a ``look``."""
    if new == stored:
        return False
    return not (new.isascii() and stored.isascii()) or fold(new) == fold(stored)


def differences(new: str, stored: str, most: int = 4) -> str:
    """The characters where two names differ, with their code points: what the eye misses
    (``... U+0441 CYRILLIC SMALL LETTER ES at 0 where the stored name has 'c' U+0063 ...``)."""
    parts = []
    matcher = difflib.SequenceMatcher(None, new, stored, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        ours, theirs = _points(new[i1:i2]), _points(stored[j1:j2])
        parts.append(f"{ours} at {i1} where the stored name has {theirs}")
    more = f"; {len(parts) - most} more" if len(parts) > most else ""
    return "; ".join(parts[:most]) + more


def _points(text: str) -> str:
    if not text:
        return "nothing"
    return ", ".join(
        f"{char!r} U+{ord(char):04X} {unicodedata.name(char, '')}".rstrip() for char in text
    )
