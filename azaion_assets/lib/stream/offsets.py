"""Offset ranges of the annotation stream: the partitions of the ``annotations`` asset.

A partition key shows its range, ``000000001000-000000001999``, zero-padded so keys sort in
stream order. Ranges are closed and cover offsets, not messages: RabbitMQ offsets are not
contiguous (tracking records take offsets too), so a range of N offsets holds at most N
messages. Consecutive ranges tile the offset line with no gap, which is what lets the sensor
keep a single number as its cursor.

A partition is a fixed block of offsets that fills as annotators work: a run applies a
*segment* of it (the offsets new since the last run) and materialises the partition again, so
partitions grow with the messages and runs with the time, not with the sensor's ticks.
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


def plan_blocks(
    start: int, tail: int, size: int, max_blocks: int, open_block: OffsetRange | None = None
) -> tuple[list[OffsetRange], int]:
    """The blocks that hold ``[start, tail]``, oldest first, and the last offset they take.

    A block is a fixed range of ``size`` offsets, the key of one partition: the open block
    (``open_block``, the newest one, still filling) is reused while ``start`` falls in it, and
    each new block begins where the one before ends, so blocks tile the offset line whatever
    ``size`` was when each was made. At most ``max_blocks`` are returned, so one run stays
    bounded however large the backlog; the next one continues from the offset after the last.
    """
    if size < 1 or max_blocks < 1:
        raise ValueError("size and max_blocks must be at least 1")
    if start > tail:
        raise ValueError(f"nothing to plan: start {start} is past tail {tail}")
    blocks: list[OffsetRange] = []
    first = start
    if open_block is not None and open_block.first <= start <= open_block.last:
        blocks.append(open_block)
        first = open_block.last + 1
    while len(blocks) < max_blocks and (not blocks or blocks[-1].last < tail):
        blocks.append(OffsetRange(first, first + size - 1))
        first += size
    return blocks, min(tail, blocks[-1].last)


def segment_of(block: OffsetRange, offsets: OffsetRange) -> OffsetRange:
    """The part of ``block`` that a run over ``offsets`` applies."""
    first, last = max(block.first, offsets.first), min(block.last, offsets.last)
    if first > last:
        raise ValueError(f"offsets {offsets.key} do not reach partition {block.key}")
    return OffsetRange(first, last)
