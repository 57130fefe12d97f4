"""The portable-name policy: which annotation names may enter the data tree as file names.

A name becomes ``images/<name><ext>`` and ``labels/<name>.txt``, read by annotators and tools on
Windows, Linux and macOS and shown to people. ``check_name`` (``message_fields``) already keeps
a name inside its folder; this keeps it usable: every character is a Unicode letter, mark or
number, an ASCII space, or printable ASCII punctuation other than the nine Windows forbids. So
control characters, invisible format characters (bidi overrides, zero-width, BOM), non-ASCII
spaces and every non-ASCII symbol or punctuation (the look-alikes of ``/`` and ``..``) are out,
as are the names Windows reserves for devices and ends or starts that tools misread.

The decoder sees one message and no state, so an unportable name becomes a ``Rejected`` that
holds the event back (``held_back``): the ingest applies it after all if the name is already
stored (names stored before this policy stay readable and editable). ``fold`` is the key under
which names that differ only by case or Unicode normalisation collide.
"""

from __future__ import annotations

import re
import unicodedata

from azaion_assets.lib.stream.events import AnnotationEvent, BulkEvent, Rejected

UNPORTABLE = "unportable name"
WINDOWS_FORBIDDEN = frozenset('<>:"/\\|?*')
# Printable ASCII that every platform takes in a file name: the fast path of nearly every name.
_PLAIN = re.compile(r"[A-Za-z0-9_\-.()\[\]+,'@#$%&=!~;{}^`]*[A-Za-z0-9_\-()\[\]+,'@#$%&=!~;{}^`]")
_ALLOWED_CATEGORIES = ("L", "M", "N")  # letters, marks, numbers: any script
_SLASH_MARKS = frozenset("\u0337\u0338")  # combining short and long solidus overlay
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"]
)


def unportable(name: str) -> str | None:
    """Why ``name`` is not portable, as ``"unportable name: ..."``, or None if it is.

    One compiled match for plain ASCII names (the platform's ``<video>_<time>``); one pass
    over the characters otherwise. Positions count from 0.
    """
    if not name:
        return f"{UNPORTABLE}: empty"
    if not _PLAIN.fullmatch(name):
        for i, char in enumerate(name):
            problem = _char_problem(char)
            if problem:
                return f"{UNPORTABLE}: {problem} at {i}"
        if name[0] == " ":
            return f"{UNPORTABLE}: {name!r} begins with a space"
        if name[-1] in ". ":
            return f"{UNPORTABLE}: {name!r} ends with a dot or space, which Windows drops"
        if unicodedata.category(name[0]).startswith("M"):
            return f"{UNPORTABLE}: {name!r} begins with a combining mark"
    if name[0] == "-":
        return f"{UNPORTABLE}: {name!r} begins with '-', which tools read as an option"
    stem = name.split(".", 1)[0].rstrip(" ").upper()
    if stem in _RESERVED:
        return f"{UNPORTABLE}: {stem!r} is a device name Windows reserves (in any case)"
    return None


_KINDS = {"Z": "space", "S": "symbol", "P": "punctuation", "C": "unassigned or private character"}


def _char_problem(char: str) -> str | None:
    if char == " " or (char.isascii() and char.isprintable()):
        return f"character {char!r} that Windows forbids" if char in WINDOWS_FORBIDDEN else None
    category = unicodedata.category(char)
    if category.startswith(_ALLOWED_CATEGORIES) and char not in _SLASH_MARKS:
        return None
    code = f"U+{ord(char):04X} {unicodedata.name(char, '')}".rstrip()
    if category == "Cc":
        return f"control character {code}"
    if category == "Cf":
        return f"invisible format character {code}"
    if char in _SLASH_MARKS:
        return f"slash overlay mark {code}"
    return f"non-ASCII {_KINDS[category[0]]} {code}"


def fold(name: str) -> str:
    """The key of names that differ only by case or Unicode normalisation (``CaseCollision``
    and ``casecollision``, NFC and NFD ``café``): canonical caseless matching, in NFC."""
    if name.isascii():
        return name.lower()
    nfd = unicodedata.normalize("NFD", name)
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", nfd.casefold()))


def held_back(event: AnnotationEvent | BulkEvent) -> AnnotationEvent | BulkEvent | Rejected:
    """``event``, or a ``Rejected`` holding it if it names an unportable name (the first)."""
    names = (event.name,) if isinstance(event, AnnotationEvent) else event.names
    for name in names:
        reason = unportable(name)
        if reason:
            return Rejected(reason, event.status, name, held=event)
    return event
