"""What a partition changed in data/, as distinct names: what the sensors count as new data.

A re-sent message is one name (none at all when its content is identical), an edit of a
validated annotation is a change, and an annotation taken out of data/ again does not count.
"""

from azaion_assets.dev.messages import bulk
from azaion_assets.lib.stream.events import Status
from azaion_assets_tests.lib.ingest.test_apply_events import OPERATOR, VALIDATOR, _apply, created


def test_a_resent_created_counts_once_and_not_at_all_when_identical(tree):
    first = _apply(tree, [created("a"), created("a"), created("b")])
    assert first.into_data == {"a", "b"} and first.written == {"data": 3}
    again = _apply(tree, [created("a"), created("b", seed=7)], first=10)
    assert again.into_data == {"b"}  # a: the same bytes as data/ holds
    assert again.unchanged == 1 and not again.out_of_data


def test_an_edit_of_a_validated_annotation_is_a_change(tree):
    _apply(tree, [created("a")])
    edit = created("a", seed=0, boxes=[(2, 0.3, 0.3, 0.1, 0.1)], status=Status.EDITED)
    summary = _apply(tree, [edit], first=5)
    assert summary.into_data == {"a"} and summary.unchanged == 0


def test_deleted_or_sent_back_to_seed_leaves_data(tree):
    _apply(tree, [created("a"), created("b"), created("c", OPERATOR)])
    summary = _apply(
        tree,
        [
            bulk(["a"], Status.DELETED, VALIDATOR),
            created("b", OPERATOR, seed=3, status=Status.EDITED),  # an operator's edit: seed
            bulk(["c"], Status.VALIDATED, VALIDATOR),  # seed -> data
        ],
        first=10,
    )
    assert summary.out_of_data == {"a", "b"} and summary.into_data == {"c"}


def test_the_last_event_of_a_name_in_the_partition_decides(tree):
    summary = _apply(
        tree, [created("a"), bulk(["a"], Status.DELETED, VALIDATOR), created("b")], group_size=1
    )
    assert summary.into_data == {"b"} and summary.out_of_data == {"a"}
    assert summary.to_json()["into_data"] == ["b"]
