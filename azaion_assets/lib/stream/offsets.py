"""Offset ranges of the annotation stream: the partitions of the ``annotations`` asset.

A partition key shows its range, ``000000001000-000000001999``, zero-padded so keys sort in
stream order. Ranges are closed and cover offsets, not messages: RabbitMQ offsets are not
contiguous (tracking records take offsets too), so a range of N offsets holds at most N
messages. Consecutive ranges tile the offset line with no gap, which is what lets the sensor
keep a single number as its cursor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KEY = re.compile(r"^(\d{12,})-(\d{12,})$")


@dataclass(frozen=True, order=True)
class OffsetRange:
    first: int
    last: int

    def __post_init__(self) -> None:
        if not 0 <= self.first <= self.last:
            raise ValueError(f"invalid offset range {self.first}..{self.last}")

    @property
    def key(self) -> str:
        return f"{self.first:012d}-{self.last:012d}"

    @classmethod
    def parse(cls, key: str) -> OffsetRange:
        match = _KEY.match(key)
        if match is None:
            raise ValueError(f"not an offset-range partition key: {key!r}")
        return cls(int(match[1]), int(match[2]))

    def __len__(self) -> int:
        return self.last - self.first + 1


def plan_ranges(start: int, tail: int, max_messages: int, max_ranges: int) -> list[OffsetRange]:
    """Tile ``[start, tail]`` with ranges of at most ``max_messages`` offsets, oldest first.

    At most ``max_ranges`` are returned, so one sensor tick stays small however large the
    backlog; the next tick continues where these end.
    """
    if max_messages < 1 or max_ranges < 1:
        raise ValueError("max_messages and max_ranges must be at least 1")
    ranges = []
    first = start
    while first <= tail and len(ranges) < max_ranges:
        last = min(first + max_messages - 1, tail)
        ranges.append(OffsetRange(first, last))
        first = last + 1
    return ranges
