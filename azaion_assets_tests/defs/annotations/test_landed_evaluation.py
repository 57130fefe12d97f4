"""The ``every_partition_landed`` verdict reads right for one given-up offset range and for many."""

from azaion_assets.defs.annotations.stranded_partitions import MAX_REQUESTS, landed_evaluation


def test_the_verdict_counts_the_offset_ranges_given_up():
    one = landed_evaluation(["000000000000-000000000009"])
    assert one.description is not None
    assert one.description.startswith(
        f"given up on 1 offset range after {MAX_REQUESTS} failed runs each;"
    )
    assert "re-execute each one's last run (its azaion/offsets tag" in one.description
    assert one.metadata["offsets"].value == ["000000000000-000000000009"]  # type: ignore[union-attr]
    two = landed_evaluation(["000000000000-000000000009", "000000000010-000000000019"])
    assert two.description is not None
    assert two.description.startswith("given up on 2 offset ranges")
    assert landed_evaluation([]).passed
