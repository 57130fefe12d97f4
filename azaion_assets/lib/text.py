"""Texts for people: counts that read right whatever the count.

One helper for every log line, description and skip reason, so "1 partitions" cannot creep back
in one message while the others are fixed.
"""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 partition``, ``0 partitions``, ``2 boxes`` (``nouns`` where adding "s" is wrong)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
