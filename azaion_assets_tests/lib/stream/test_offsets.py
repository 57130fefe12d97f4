"""Partitions as fixed blocks of offsets, and the segment of a block a run applies."""

import pytest

from azaion_assets.lib.stream.offsets import OffsetRange, plan_blocks, segment_of


def test_blocks_are_fixed_and_the_open_one_is_reused_until_it_fills():
    blocks, through = plan_blocks(0, 36, 100, 50)
    assert blocks == [OffsetRange(0, 99)] and through == 36
    again, through = plan_blocks(37, 120, 100, 50, open_block=blocks[-1])
    assert again == [OffsetRange(0, 99), OffsetRange(100, 199)] and through == 120
    full, through = plan_blocks(200, 200, 100, 50, open_block=OffsetRange(100, 199))
    assert full == [OffsetRange(200, 299)] and through == 200


def test_blocks_keep_their_size_when_the_setting_changes():
    """A block made at one size keeps it; the next starts where it ends, at the new size."""
    blocks, _ = plan_blocks(50, 1500, 1000, 50, open_block=OffsetRange(0, 99))
    assert blocks == [OffsetRange(0, 99), OffsetRange(100, 1099), OffsetRange(1100, 2099)]


def test_a_cursor_without_an_open_block_starts_the_first_block_at_the_cursor():
    blocks, through = plan_blocks(4, 13, 10, 50, open_block=None)
    assert blocks == [OffsetRange(4, 13)] and through == 13
    beyond, _ = plan_blocks(500, 510, 10, 50, open_block=OffsetRange(0, 9))
    assert beyond == [OffsetRange(500, 509), OffsetRange(510, 519)]  # retention skipped ahead


def test_a_backlog_is_taken_a_bounded_number_of_blocks_at_a_time():
    blocks, through = plan_blocks(0, 10_000, 1000, 3)
    assert len(blocks) == 3 and through == 2999


def test_plan_refuses_nonsense():
    with pytest.raises(ValueError, match="at least 1"):
        plan_blocks(0, 5, 0, 1)
    with pytest.raises(ValueError, match="past tail"):
        plan_blocks(6, 5, 10, 1)


def test_the_segment_of_a_block_is_its_part_of_the_offsets():
    block = OffsetRange(1000, 1999)
    assert segment_of(block, OffsetRange(1500, 2300)) == OffsetRange(1500, 1999)
    assert segment_of(block, OffsetRange(900, 1200)) == OffsetRange(1000, 1200)
    with pytest.raises(ValueError, match="do not reach partition"):
        segment_of(block, OffsetRange(2000, 2100))
