"""The ``every_partition_landed`` verdict reads right for one given-up partition and for many."""

from azaion_assets.defs.annotations.stranded_partitions import MAX_REQUESTS, landed_evaluation


def test_the_verdict_counts_the_partitions_given_up():
    one = landed_evaluation(["000000000000-000000000009"]).description
    assert one is not None
    assert one.startswith(f"given up on 1 partition after {MAX_REQUESTS} failed runs each;")
    two = landed_evaluation(["000000000000-000000000009", "000000000010-000000000019"])
    assert two.description is not None and two.description.startswith("given up on 2 partitions")
    assert landed_evaluation([]).passed
