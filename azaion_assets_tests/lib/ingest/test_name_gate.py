"""The portable-name policy where the state is known: new names that collide by case or Unicode
form are quarantined naming the first, and names stored before the policy stay usable."""

import json
import sqlite3
from contextlib import closing

from azaion_assets.dev.messages import bulk
from azaion_assets.lib.ingest.apply_events import quarantine_dir, state_path
from azaion_assets.lib.ingest.ingest_state import IngestState
from azaion_assets.lib.stream.confusables import look
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
    return f"name collision: differs only by case or Unicode form from stored {first!r}: "


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
    assert record["reason"] == _reason("CaseCollision") + (
        "'c' U+0063 LATIN SMALL LETTER C at 0 where the stored name has "
        "'C' U+0043 LATIN CAPITAL LETTER C; 'c' U+0063 LATIN SMALL LETTER C at 4 where the "
        "stored name has 'C' U+0043 LATIN CAPITAL LETTER C"
    )
    assert record["name"] == "casecollision"
    # Accepted by the decoder, so only the event was kept: the message is rebuilt from it.
    body = (quarantine_dir(tree) / f"{10:020d}.bin").read_bytes()
    again = decode_message(body, {"AnnotationStatus": 10}).event
    assert record["body"] == "re-encoded from the decoded event"
    assert isinstance(again, AnnotationEvent) and again.name == "casecollision"


def test_nfc_and_nfd_forms_of_one_name_collide(tree):
    _apply(tree, [created("caf\u00e9")])
    summary = _apply(tree, [created("cafe\u0301")], first=10)
    assert summary.quarantined == 1
    assert _record(tree, 10)["reason"] == _reason("caf\u00e9") + (
        "'e' U+0065 LATIN SMALL LETTER E, '\u0301' U+0301 COMBINING ACUTE ACCENT at 3 where the "
        "stored name has '\u00e9' U+00E9 LATIN SMALL LETTER E WITH ACUTE"
    )


def test_two_new_names_colliding_in_one_group_keep_the_first(tree):
    summary = _apply(tree, [created("Frame_7"), created("FRAME_7", seed=1), created("other")])
    assert summary.quarantined == 1 and summary.events == {"Created": 2}
    assert list(places(tree, "Frame_7")) == ["data"] and places(tree, "FRAME_7") == {}
    assert _record(tree, 1)["reason"].startswith(_reason("Frame_7"))


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


def test_an_older_state_database_gains_an_indexed_look_of_every_name(tree):
    _old_state(tree, ["CaseCollision", "caf\u00e9"])
    with IngestState(state_path(tree)) as state:
        keys = [look("casecollision"), look("cafe\u0301"), look("none")]
        assert state.holders(keys) == {keys[0]: ["CaseCollision"], keys[1]: ["caf\u00e9"]}


def _looks_like(first: str) -> str:
    return f"name collision: looks like (its TR39 skeleton is that of) stored {first!r}: "


def test_names_that_look_like_a_stored_one_are_quarantined_with_their_code_points(tree):
    _apply(tree, [created("case_0001"), created("cose")])
    alike = ["\u0441\u0430se_0001", "\uff43\uff41\uff53\uff45_0001", "c\u03bfse"]
    summary = _apply(tree, [created(n, seed=i) for i, n in enumerate(alike)], first=10)
    assert summary.quarantined == 3 and summary.events == {}
    assert summary.quarantine_reasons == {"name collision": 3}
    assert _record(tree, 10)["reason"] == _looks_like("case_0001") + (
        "'\u0441' U+0441 CYRILLIC SMALL LETTER ES, '\u0430' U+0430 CYRILLIC SMALL LETTER A at 0 "
        "where the stored name has 'c' U+0063 LATIN SMALL LETTER C, 'a' U+0061 LATIN SMALL "
        "LETTER A"
    )
    assert _record(tree, 11)["reason"].startswith(
        _looks_like("case_0001") + "'\uff43' U+FF43 FULLWIDTH LATIN SMALL LETTER C, "
    )
    assert _record(tree, 12)["reason"] == _looks_like("cose") + (
        "'\u03bf' U+03BF GREEK SMALL LETTER OMICRON at 1 where the stored name has "
        "'o' U+006F LATIN SMALL LETTER O"
    )
    assert all(places(tree, n) == {} for n in alike)


def test_a_look_alike_in_the_same_group_is_refused_and_the_first_to_arrive_wins(tree):
    summary = _apply(tree, [created("\u0441ase_7"), created("case_7", seed=1)])
    assert summary.quarantined == 1 and summary.events == {"Created": 1}
    assert list(places(tree, "\u0441ase_7")) == ["data"] and places(tree, "case_7") == {}
    assert _record(tree, 1)["reason"].startswith(_looks_like("\u0441ase_7"))


def test_plain_ascii_names_collide_by_case_only_not_by_skeleton(tree):
    """TR39 maps ``rn`` to ``m`` and ``1`` to ``l``: distinct names the platform does send."""
    names = ["frame_1", "frame_l", "corn_2", "com_2", "frame_0", "frame_O"]
    assert look("frame_1") == look("frame_l") and look("corn_2") == look("com_2")
    summary = _apply(tree, [created(n, seed=i) for i, n in enumerate(names)])
    assert summary.quarantined == 0 and summary.events == {"Created": 6}
    later = _apply(tree, [created("fr\u0430me_1")], first=10)  # a Cyrillic a: not ASCII
    assert later.quarantined == 1
    assert _record(tree, 10)["reason"].startswith(_looks_like("frame_1"))


def test_looks_are_computed_anew_when_the_unicode_data_changes(tree):
    _apply(tree, [created("case_0001")])
    with closing(sqlite3.connect(state_path(tree))) as db:
        db.execute("UPDATE names SET look = 'stale'")
        db.execute("UPDATE facts SET value = 'look 1, Unicode 1.0 (ICU 1.0)'")
        db.commit()
    with IngestState(state_path(tree)) as state:
        assert state.holders([look("case_0001"), "stale"]) == {look("case_0001"): ["case_0001"]}
    summary = _apply(tree, [created("\u0441ase_0001")], first=10)
    assert summary.quarantined == 1


def test_a_state_of_the_version_that_kept_folds_gains_looks_and_drops_the_fold_index(tree):
    _old_state(tree, ["CaseCollision"])
    with closing(sqlite3.connect(state_path(tree))) as db:  # as the previous version left it
        db.execute("ALTER TABLE names ADD COLUMN fold TEXT")
        db.execute("UPDATE names SET fold = lower(name)")
        db.execute("CREATE INDEX names_fold ON names (fold)")
        db.commit()
    summary = _apply(tree, [created("casecollision", seed=1)], first=10)
    assert summary.quarantined == 1
    with closing(sqlite3.connect(state_path(tree))) as db:
        indexes = {row[1] for row in db.execute("PRAGMA index_list(names)")}
    assert "names_look" in indexes and "names_fold" not in indexes
