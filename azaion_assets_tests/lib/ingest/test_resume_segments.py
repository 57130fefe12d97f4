"""Where a run launched by hand (no offsets named) starts in each partition."""

import pytest

from azaion_assets.lib.ingest.apply_events import ensure_places, state_path
from azaion_assets.lib.ingest.ingest_state import IngestState
from azaion_assets.lib.ingest.partition_run import resume_segments
from azaion_assets.lib.stream.offsets import OffsetRange

BLOCK = OffsetRange(0, 99).key


def _applied(tree, *segments: tuple[int, int]) -> None:
    ensure_places(tree)
    with IngestState(state_path(tree)) as state:
        for first, last in segments:
            key = OffsetRange(first, last).key
            state.finish_partition(key, first, last, {"messages": 1}, "2026-12-07T00:00:00")


def test_a_partition_never_applied_starts_at_its_first_offset(tree):
    assert resume_segments(tree, [BLOCK], 40) == {BLOCK: OffsetRange(0, 40)}


def test_it_resumes_after_the_contiguous_segments_up_to_the_tail(tree):
    _applied(tree, (0, 9), (10, 24))
    assert resume_segments(tree, [BLOCK], 150) == {BLOCK: OffsetRange(25, 99)}


def test_a_hole_is_where_it_resumes(tree):
    """A segment given up on leaves a hole: the run reads from it (later segments' events are
    already applied, and stay so)."""
    _applied(tree, (0, 9), (30, 39))
    assert resume_segments(tree, [BLOCK], 39) == {BLOCK: OffsetRange(10, 39)}


def test_applied_to_the_tail_its_newest_segment_is_taken_again(tree):
    _applied(tree, (0, 9), (10, 24))
    assert resume_segments(tree, [BLOCK], 24) == {BLOCK: OffsetRange(10, 24)}


def test_a_partition_past_the_tail_is_refused(tree):
    with pytest.raises(ValueError, match="past the stream's tail 50"):
        resume_segments(tree, [OffsetRange(100, 199).key], 50)
