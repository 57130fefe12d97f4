"""Planning decides every file move from the names' logs alone, and touches no file itself."""

import random

from azaion_assets.dev.messages import Author, annotation, bulk
from azaion_assets.dev.synthetic import render
from azaion_assets.lib.ingest.ingest_state import Kind, NameState
from azaion_assets.lib.ingest.planning import Planner, quarantine_dir
from azaion_assets.lib.ingest.summary import IngestSummary
from azaion_assets.lib.stream.contract import decode_message
from azaion_assets.lib.stream.events import Role, Status
from azaion_assets_tests.treeview import snapshot

VALIDATOR = Author(Role.VALIDATOR, "val@azaion.com")
BOX = [(0, 0.5, 0.5, 0.2, 0.2)]


def _group(*messages, first=10):
    return [
        (first + i, body, props, decode_message(body, props, 1 << 20))
        for i, (body, props) in enumerate(messages)
    ]


def test_a_newer_content_is_written_and_every_stale_copy_planned_away(tree):
    (tree.seed.images / "n.png").write_bytes(b"left by a crash")
    (tree.data.labels / "n.txt").write_bytes(b"0 0.5 0.5 0.1 0.1\n")
    before = snapshot(tree)
    summary = IngestSummary()
    image = render(random.Random(0), 64, 48)[0]
    group = _group(annotation("n", image, ".jpg", BOX, VALIDATOR, Status.EDITED))
    committed = NameState(log=[(0, Kind.CONTENT_VALIDATED)], ext=".png")
    plan = Planner(tree, "p", summary).plan(group, {"n": committed})
    assert snapshot(tree) == before  # planned, not done
    data = tree.data
    assert plan.writes[0] == (f"{data.images}/n.jpg", image)
    assert plan.writes[1][0] == f"{data.labels}/n.txt" and not plan.moves
    assert f"{tree.seed.images}/n.png" in plan.removals
    assert not {f"{data.images}/n.jpg", f"{data.labels}/n.txt"} & set(plan.removals)
    assert plan.states["n"].log == [(0, Kind.CONTENT_VALIDATED), (10, Kind.CONTENT_VALIDATED)]
    assert summary.written == {"data": 1} and summary.applied == 1


def test_a_delete_moves_what_is_there_and_an_unknown_name_is_counted(tree):
    (tree.data.images / "n.jpg").write_bytes(b"image")
    (tree.data.labels / "n.txt").write_bytes(b"label")
    summary = IngestSummary()
    group = _group(bulk(["n", "ghost"], Status.DELETED, VALIDATOR))
    committed = NameState(log=[(0, Kind.CONTENT_VALIDATED)], ext=".jpg")
    plan = Planner(tree, "p", summary).plan(group, {"n": committed, "ghost": NameState()})
    deleted = tree.deleted
    assert sorted(plan.moves) == [
        (f"{tree.data.images}/n.jpg", f"{deleted.images}/n.jpg"),
        (f"{tree.data.labels}/n.txt", f"{deleted.labels}/n.txt"),
    ]
    assert not plan.writes and summary.moved == {"to deleted": 1}
    assert summary.unknown_names == 1 and summary.unknown_sample == ["Deleted ghost"]


def test_a_bad_message_is_planned_into_the_quarantine(tree):
    group = _group((b"\xc1 broken", {}), first=7)
    plan = Planner(tree, "p", IngestSummary()).plan(group, {})
    folder = quarantine_dir(tree)
    assert [target for target, _ in plan.writes] == [
        f"{folder}/{7:020d}.bin",
        f"{folder}/{7:020d}.json",
    ]
    assert plan.writes[0][1] == b"\xc1 broken"
