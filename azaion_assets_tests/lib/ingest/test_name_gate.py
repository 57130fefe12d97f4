"""The portable-name policy where the state is known: new names that collide by case or Unicode
form are quarantined naming the first, and names stored before the policy stay usable."""

import json
import sqlite3
from contextlib import closing

from azaion_assets.dev.messages import bulk
from azaion_assets.lib.ingest.apply_events import quarantine_dir, state_path
from azaion_assets.lib.ingest.ingest_state import IngestState
from azaion_assets.lib.stream.contract import decode_message
from azaion_assets.lib.stream.events import AnnotationEvent, Status
from azaion_assets_tests.lib.ingest.test_apply_events import (
    _OLD_SCHEMA,
    OPERATOR,
    VALIDATOR,
    _apply,
    created,
)
from azaion_assets_tests.treeview import places


def _record(tree, offset: int) -> dict:
    return json.loads((quarantine_dir(tree) / f"{offset:020d}.json").read_text())


def _reason(first: str) -> str:
    return f"name collision: differs only by case or Unicode form from stored {first!r}"


def test_a_new_name_differing_only_by_case_is_quarantined_naming_the_first(tree):
    _apply(tree, [created("CaseCollision")])
    summary = _apply(tree, [created("casecollision", seed=1)], first=10)
    assert places(tree, "CaseCollision") == {
        "data": ["images/CaseCollision.jpg", "labels/CaseCollision.txt"]
    }
    assert places(tree, "casecollision") == {}
    assert summary.quarantined == 1 and summary.events == {} and summary.roles == {}
    assert summary.quarantine_reasons == {"name collision": 1}
    record = _record(tree, 10)
    assert record["reason"] == _reason("CaseCollision") and record["name"] == "casecollision"
    # Accepted by the decoder, so only the event was kept: the message is rebuilt from it.
    body = (quarantine_dir(tree) / f"{10:020d}.bin").read_bytes()
    again = decode_message(body, {"AnnotationStatus": 10}).event
    assert record["body"] == "re-encoded from the decoded event"
    assert isinstance(again, AnnotationEvent) and again.name == "casecollision"


def test_nfc_and_nfd_forms_of_one_name_collide(tree):
    _apply(tree, [created("caf\u00e9")])
    summary = _apply(tree, [created("cafe\u0301")], first=10)
    assert summary.quarantined == 1 and _record(tree, 10)["reason"] == _reason("caf\u00e9")


def test_two_new_names_colliding_in_one_group_keep_the_first(tree):
    summary = _apply(tree, [created("Frame_7"), created("FRAME_7", seed=1), created("other")])
    assert summary.quarantined == 1 and summary.events == {"Created": 2}
    assert list(places(tree, "Frame_7")) == ["data"] and places(tree, "FRAME_7") == {}
    assert _record(tree, 1)["reason"] == _reason("Frame_7")


def test_a_bulk_message_naming_a_new_colliding_name_is_quarantined_whole(tree):
    _apply(tree, [created("Kept"), created("other", OPERATOR)])
    summary = _apply(tree, [bulk(["other", "KEPT"], Status.VALIDATED, VALIDATOR)], first=10)
    assert summary.quarantined == 1 and summary.unknown_names == 0
    assert list(places(tree, "other")) == ["seed"]  # never half applied
    assert _record(tree, 10)["name"] == "KEPT"


def test_a_new_unportable_name_is_quarantined_with_its_message(tree):
    message = created("CON")
    summary = _apply(tree, [message, bulk(["a:b"], Status.DELETED, VALIDATOR)])
    assert summary.quarantined == 2 and summary.unknown_names == 0
    assert summary.quarantine_reasons == {"unportable name": 2}
    assert (quarantine_dir(tree) / f"{0:020d}.bin").read_bytes() == message[0]
    assert "body" not in _record(tree, 0)
    with IngestState(state_path(tree)) as state:  # neither became a stored name
        assert not state.load(["CON", "a:b"])["a:b"].log and not state.load(["CON"])["CON"].log


def _old_state(tree, names: list[str]) -> None:
    """A state database written before the policy, holding ``names`` (created at offset 1)."""
    path = state_path(tree)
    path.parent.mkdir(parents=True)
    with closing(sqlite3.connect(path)) as db:
        db.executescript(_OLD_SCHEMA)
        db.executemany(
            "INSERT INTO names VALUES (?, ?, '.jpg')", [(n, json.dumps([[1, 2]])) for n in names]
        )
        db.commit()


def test_names_stored_before_the_policy_stay_editable_validatable_and_deletable(tree):
    old = ["CaseCollision", "casecollision", "a:b", "frame."]
    _old_state(tree, old)
    edits = [created(n, OPERATOR, status=Status.EDITED) for n in old]
    summary = _apply(tree, [*edits, bulk(old, Status.VALIDATED, VALIDATOR)], first=10)
    assert summary.quarantined == 0 and summary.events == {"Edited": 4, "Validated": 1}
    assert all(list(places(tree, n)) == ["data"] for n in old)
    deleted = _apply(tree, [bulk(["a:b", "casecollision"], Status.DELETED, VALIDATOR)], first=20)
    assert deleted.quarantined == 0 and deleted.moved == {"to deleted": 2}
    assert list(places(tree, "a:b")) == ["deleted"]
    assert list(places(tree, "CaseCollision")) == ["data"]


def test_a_bulk_naming_a_stored_and_a_new_unportable_name_is_quarantined(tree):
    _old_state(tree, ["a:b"])
    summary = _apply(tree, [bulk(["a:b", "c|d"], Status.DELETED, VALIDATOR)], first=10)
    assert summary.quarantined == 1 and summary.events == {}
    record = _record(tree, 10)
    assert record["name"] == "c|d" and record["reason"].startswith("unportable name: ")


def test_an_older_state_database_gains_an_indexed_fold_of_every_name(tree):
    _old_state(tree, ["CaseCollision", "caf\u00e9"])
    with IngestState(state_path(tree)) as state:
        assert state.holders(["casecollision", "caf\u00e9", "none"]) == {
            "casecollision": ["CaseCollision"],
            "caf\u00e9": ["caf\u00e9"],
        }
    with closing(sqlite3.connect(state_path(tree))) as db:
        plan = db.execute("EXPLAIN QUERY PLAN SELECT name FROM names WHERE fold IN (?, ?)", "ab")
        assert "names_fold" in " ".join(str(row) for row in plan)
    summary = _apply(tree, [created("CAF\u00c9")], first=10)
    assert _record(tree, 10)["reason"] == _reason("caf\u00e9") and summary.quarantined == 1
