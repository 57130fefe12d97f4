from azaion_assets.lib.text import plural


def test_a_count_reads_right_whatever_it_is():
    assert plural(1, "annotation partition") == "1 annotation partition"
    assert plural(2, "annotation partition") == "2 annotation partitions"
    assert plural(0, "partition") == "0 partitions"
    assert plural(1, "box", "boxes") == "1 box" and plural(3, "box", "boxes") == "3 boxes"
