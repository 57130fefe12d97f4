import io
import json
import os
import random
import sqlite3
from contextlib import closing
from datetime import UTC, datetime

import pytest
from PIL import Image

from azaion_assets.dev.messages import Author, annotation, bulk
from azaion_assets.dev.synthetic import render
from azaion_assets.lib.ingest import apply_events as ingest_module
from azaion_assets.lib.ingest.apply_events import Ingest, quarantine_dir, state_path
from azaion_assets.lib.ingest.ingest_state import IngestState, Kind, Origin, Place, replay
from azaion_assets.lib.stream.contract import pack
from azaion_assets.lib.stream.events import STATUS_PROPERTY, Role, Status
from azaion_assets.lib.stream.limits import MessageLimits
from azaion_assets_tests.treeview import make_tree, places, snapshot

VALIDATOR = Author(Role.VALIDATOR, "val@azaion.com")
OPERATOR = Author(Role.OPERATOR, "op@azaion.com")
BOX = [(0, 0.5, 0.5, 0.2, 0.2)]


def _jpeg(seed: int = 0) -> bytes:
    return render(random.Random(seed), 64, 48)[0]


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


def _apply(tree, messages, partition="000000000000-000000009999", first=0, group_size=256):
    """Apply ``(body, props)`` messages at consecutive offsets from ``first``; return summary."""
    with IngestState(state_path(tree)) as state:
        ingest = Ingest(tree, state, partition, max_bytes=1 << 20, group_size=group_size)
        for i, (body, props) in enumerate(messages):
            ingest.add(first + i, body, props)
        ingest.flush()
        return ingest.summary


def created(name, author=VALIDATOR, seed=0, boxes=BOX, status=Status.CREATED):
    return annotation(name, _jpeg(seed), ".jpg", boxes, author, status)


def test_created_by_a_validator_goes_to_data_and_by_anyone_else_to_seed(tree):
    summary = _apply(
        tree, [created("v1"), created("o1", OPERATOR, boxes=[(3, 0.5, 0.5, 0.1, 0.1)])]
    )
    assert places(tree, "v1") == {"data": ["images/v1.jpg", "labels/v1.txt"]}
    assert places(tree, "o1") == {"seed": ["images/o1.jpg", "labels/o1.txt"]}
    assert (tree.data.labels / "v1.txt").read_text() == "0 0.500000 0.500000 0.200000 0.200000\n"
    assert (tree.data.images / "v1.jpg").read_bytes() == _jpeg(0)
    assert summary.events == {"Created": 2}
    assert summary.roles == {"Validator": 1, "Operator": 1}
    assert summary.boxes == {0: 1, 3: 1} and summary.written == {"data": 1, "seed": 1}


@pytest.mark.parametrize("role", [Role.VALIDATOR, Role.ADMIN, Role.API_ADMIN])
def test_every_validator_role_routes_to_data(tree, role):
    _apply(tree, [created("n", Author(role))])
    assert list(places(tree, "n")) == ["data"]


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.COMPANION_PC])
def test_other_roles_route_to_seed(tree, role):
    _apply(tree, [created("n", Author(role))])
    assert list(places(tree, "n")) == ["seed"]


def test_bulk_validate_moves_seed_to_data_and_delete_moves_from_anywhere(tree):
    _apply(tree, [created("a", OPERATOR), created("b", OPERATOR), created("c")])
    summary = _apply(
        tree,
        [bulk(["a"], Status.VALIDATED, VALIDATOR), bulk(["b", "c"], Status.DELETED, VALIDATOR)],
        first=10,
    )
    assert list(places(tree, "a")) == ["data"]
    assert places(tree, "b") == {"deleted": ["images/b.jpg", "labels/b.txt"]}
    assert list(places(tree, "c")) == ["deleted"]
    assert summary.moved == {"to data": 1, "to deleted": 2} and summary.unknown_names == 0


def test_an_edit_by_a_validator_moves_a_seed_annotation_to_data_with_the_new_content(tree):
    _apply(tree, [created("a", OPERATOR, seed=1)])
    edit = annotation("a", _png(), ".png", [(5, 0.4, 0.4, 0.2, 0.2)], VALIDATOR, Status.EDITED)
    _apply(tree, [edit], first=5)
    assert places(tree, "a") == {"data": ["images/a.png", "labels/a.txt"]}  # old .jpg removed
    assert (tree.data.labels / "a.txt").read_text().startswith("5 ")


def test_validate_or_delete_of_an_unknown_name_is_recorded_not_an_error(tree):
    summary = _apply(
        tree,
        [bulk(["ghost"], Status.VALIDATED, VALIDATOR), bulk(["ghost2"], Status.DELETED, VALIDATOR)],
    )
    assert summary.unknown_names == 2 and summary.quarantined == 0
    assert summary.unknown_sample == ["Validated ghost", "Deleted ghost2"]
    assert snapshot(tree) == {}


def _bad_messages() -> dict[str, tuple[bytes, dict]]:
    props = {STATUS_PROPERTY: 10}

    def fields(**over):
        base = {
            "date": 1_700_000_000,
            "name": "x",
            "media": "m.mp4",
            "ticks": 0,
            "ext": ".jpg",
            "dets": "[]",
            "image": _jpeg(),
            "role": 20,
            "email": "e",
            "source": 1,
            "status": 10,
        }
        base.update(over)
        return pack(list(base.values()))

    return {
        "undecodable msgpack": (b"\xc1\xc1\xc1", props),
        "not an integer": (fields(ticks="soon"), props),
        "unknown AnnotationStatus": (fields(), {STATUS_PROPERTY: 99}),
        "unknown role": (fields(role=7), props),
        "invalid box": (fields(dets='[{"cls":0,"x":0.95,"y":0.5,"w":0.3,"h":0.1}]'), props),
        "not an image": (fields(image=b"GIF89a-but-not-really"), props),
        "image truncated or corrupt: JPEG": (fields(image=_jpeg()[:-100]), props),
        "unsafe name": (fields(name="../../etc/passwd"), props),
        "path separators": (fields(name="a/b"), props),
        "exceeds the": (fields(image=_jpeg() + b"\0" * (1 << 20)), props),
    }


def test_bad_messages_are_quarantined_with_raw_bytes_and_reason_and_the_batch_goes_on(tree):
    bad = _bad_messages()
    messages = [created("before"), *bad.values(), created("after")]
    summary = _apply(tree, messages, first=100)
    assert list(places(tree, "before")) == ["data"] and list(places(tree, "after")) == ["data"]
    assert summary.quarantined == len(bad) and summary.events == {"Created": 2}
    folder = quarantine_dir(tree)
    for offset, (expected, (body, _)) in enumerate(bad.items(), start=101):
        record = json.loads((folder / f"{offset:020d}.json").read_text())
        assert expected in record["reason"], record
        assert record["offset"] == offset and record["bytes"] == len(body)
        assert (folder / f"{offset:020d}.bin").read_bytes() == body
    assert not (tree.root / "etc").exists() and not any(tree.root.parent.glob("**/passwd"))


def test_the_message_limits_given_reach_the_decoder(tree):
    with IngestState(state_path(tree)) as state:
        ingest = Ingest(tree, state, "000000000000-000000009999", 1 << 20, 256, MessageLimits(1000))
        ingest.add(0, *created("big"))
        ingest.flush()
    assert ingest.summary.quarantine_reasons == {"image over STREAM_MAX_IMAGE_PIXELS": 1}
    assert not places(tree, "big")


def test_applying_a_partition_twice_changes_nothing(tree):
    messages = [created("a", OPERATOR), bulk(["a"], Status.VALIDATED, VALIDATOR), created("b")]
    messages.append(_bad_messages()["not an image"])
    first = _apply(tree, messages)
    before = snapshot(tree)
    again = _apply(tree, messages)
    assert snapshot(tree) == before
    assert first.applied == 3 and again.applied == 0 and again.already_applied == 3


def test_a_name_seen_twice_in_one_batch_is_applied_in_order(tree):
    summary = _apply(
        tree,
        [
            created("a", OPERATOR),
            bulk(["a"], Status.VALIDATED, VALIDATOR),
            created("a", OPERATOR, seed=3, status=Status.EDITED),
        ],
    )
    assert list(places(tree, "a")) == ["seed"]  # the operator's later edit sends it back
    assert (tree.seed.images / "a.jpg").read_bytes() == _jpeg(3)
    assert summary.applied == 3


def test_replay_follows_the_routing_rules():
    assert replay([(1, Kind.CONTENT_SEED), (2, Kind.VALIDATE)]).place is Place.DATA
    assert replay([(2, Kind.VALIDATE), (1, Kind.CONTENT_SEED)]).place is Place.DATA
    assert replay([(1, Kind.CONTENT_VALIDATED), (3, Kind.DELETE)]).place is Place.DELETED
    later_create = replay([(1, Kind.DELETE), (2, Kind.CONTENT_SEED)])
    assert later_create.place is Place.SEED and later_create.unknown_at == {1}
    assert replay([(5, Kind.VALIDATE)]).place is None
    assert replay([(1, Kind.CONTENT_SEED), (4, Kind.CONTENT_VALIDATED)]).content_offset == 4


def _history(rng: random.Random, names: list[str], count: int):
    messages = []
    for _ in range(count):
        roll = rng.random()
        name = rng.choice(names)
        if roll < 0.5:
            author = rng.choice([VALIDATOR, OPERATOR])
            status = rng.choice([Status.CREATED, Status.EDITED])
            image, ext = (
                (_png(), ".png") if rng.random() < 0.2 else (_jpeg(rng.randrange(4)), ".jpg")
            )
            messages.append(annotation(name, image, ext, BOX, author, status))
        elif roll < 0.75:
            messages.append(bulk(rng.sample(names, 2), Status.VALIDATED, VALIDATOR))
        elif roll < 0.9:
            messages.append(bulk([name], Status.DELETED, VALIDATOR))
        else:
            messages.append(_bad_messages()["invalid box"])
    return messages


@pytest.mark.parametrize("seed", range(6))
def test_partitions_applied_in_any_order_give_the_stream_order_tree(tmp_path, seed):
    rng = random.Random(seed)
    messages = _history(rng, ["n1", "n2", "n3", "n4"], 40)
    in_order = make_tree(tmp_path / "in-order")
    _apply(in_order, messages, group_size=1 + seed)
    shuffled = make_tree(tmp_path / "shuffled")
    cuts = sorted(rng.sample(range(1, len(messages)), 4))
    parts = [(a, b) for a, b in zip([0, *cuts], [*cuts, len(messages)], strict=True)]
    rng.shuffle(parts)
    for a, b in parts:
        _apply(shuffled, messages[a:b], first=a, group_size=3)
    assert snapshot(shuffled) == snapshot(in_order)
    assert snapshot(in_order)  # the history left something to compare


def test_a_crash_mid_group_is_repaired_by_applying_again(tree, monkeypatch):
    messages = [created(f"n{i}", OPERATOR, seed=i) for i in range(6)]
    messages += [bulk([f"n{i}" for i in range(3)], Status.VALIDATED, VALIDATOR)]
    messages += [
        bulk(["n4"], Status.DELETED, VALIDATOR),
        created("n5", seed=9, status=Status.EDITED),
    ]
    reference = make_tree(tree.root.parent / "expected")
    _apply(reference, messages, group_size=4)
    expected = snapshot(reference)

    real_replace = os.replace
    calls = {"n": 0}

    def crashing_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt("power cut")
        return real_replace(src, dst)

    monkeypatch.setattr(ingest_module.os, "replace", crashing_replace)
    with pytest.raises(KeyboardInterrupt):
        _apply(tree, messages, group_size=4)
    monkeypatch.setattr(ingest_module.os, "replace", real_replace)
    assert snapshot(tree) != expected
    with IngestState(state_path(tree)) as state:
        Ingest(tree, state, "p", 1 << 20).sweep_stale_temps()
    _apply(tree, messages, group_size=4)
    assert snapshot(tree) == expected


@pytest.mark.parametrize("crashed", ["the earlier", "the later"])
def test_files_of_a_group_that_crashed_before_its_commit_do_not_outlive_its_reapplication(
    tree, monkeypatch, crashed
):
    """A new name's files are written without looking for copies elsewhere (none was ever
    committed): a copy left by a crashed group, in another place and with another extension,
    is removed when that group is applied again, whichever partition was applied in between."""
    early = [created("x")]  # offset 0: a validator's JPEG, to data/
    late = [annotation("x", _png(), ".png", BOX, OPERATOR, Status.EDITED)]  # to seed/
    reference = make_tree(tree.root.parent / "expected")
    _apply(reference, early)
    _apply(reference, late, first=10)
    expected = snapshot(reference)

    first, then = (early, 0), (late, 10)
    if crashed == "the later":
        first, then = then, first
    real_save = IngestState.save

    def power_cut(self, states):
        raise KeyboardInterrupt("power cut after the renames, before the commit")

    monkeypatch.setattr(IngestState, "save", power_cut)
    with pytest.raises(KeyboardInterrupt):
        _apply(tree, first[0], first=first[1])
    monkeypatch.setattr(IngestState, "save", real_save)
    _apply(tree, then[0], first=then[1])
    assert len(places(tree, "x")) == 2  # the crashed group's copy is still there...
    _apply(tree, first[0], first=first[1])  # ...until its group is applied again
    assert snapshot(tree) == expected


def test_the_origin_of_the_newest_content_is_kept_with_the_log(tree):
    day = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    first = annotation("f1", _jpeg(), ".jpg", BOX, OPERATOR, when=day, media="a.mp4", ticks=40)
    edit = annotation(
        "f1", _jpeg(1), ".jpg", BOX, VALIDATOR, Status.EDITED, day.replace(hour=13), " b.mp4", 80
    )
    _apply(tree, [first, created("f2")])
    _apply(tree, [edit], first=10)
    late = annotation("f1", _jpeg(2), ".jpg", BOX, OPERATOR, Status.EDITED, day, "old.mp4", 1)
    _apply(tree, [late], first=5)  # an older edit arriving late does not win
    with IngestState(state_path(tree)) as state:
        f1 = state.load(["f1"])["f1"]
        assert f1.origin == Origin(" b.mp4", 80, int(Role.VALIDATOR), "2026-03-01T13:00:00+00:00")
        assert [o for o, _ in f1.log] == [0, 5, 10]
        assert state.media() == {"f1": " b.mp4", "f2": "f2.mp4"}


_OLD_SCHEMA = """
CREATE TABLE names (name TEXT PRIMARY KEY, log TEXT NOT NULL, ext TEXT);
CREATE TABLE partitions (partition TEXT PRIMARY KEY, first INTEGER NOT NULL,
    last INTEGER NOT NULL, summary TEXT, applied_at TEXT);
"""


def test_a_state_database_of_an_older_version_is_migrated_in_place(tree):
    path = state_path(tree)
    path.parent.mkdir(parents=True)
    with closing(sqlite3.connect(path)) as db:
        db.executescript(_OLD_SCHEMA)
        db.execute("INSERT INTO names VALUES ('old', ?, '.jpg')", (json.dumps([[3, 1]]),))
        db.commit()
    _apply(tree, [created("old"), annotation("new", _jpeg(), ".jpg", BOX, VALIDATOR, media="v")])
    with IngestState(path) as state:
        loaded = state.load(["old", "new"])
        assert loaded["old"].log == [(0, Kind.CONTENT_VALIDATED), (3, Kind.CONTENT_VALIDATED)]
        assert loaded["old"].origin is None  # offset 3 is its newest content: applied before
        assert loaded["new"].origin is not None and loaded["new"].origin.media == "v"
        assert state.media() == {"new": "v"}
    with IngestState(path):  # opening a migrated database again changes nothing
        pass


def test_an_image_over_the_time_budget_is_quarantined_and_the_partition_goes_on(tree):
    """A 32 MB PNG of tiny chunks (13 s in the ingest's own process, before) is cut off at
    STREAM_IMAGE_SECONDS in the image judge's child; the messages around it are applied."""
    png = _png()
    flood = png[:33] + b"\x00\x00\x00\x00prVt\xa6\x87\x8c\x49" * (32_000_000 // 12) + png[33:]
    messages = [
        created("before"),
        annotation("flood", flood, ".png", BOX, VALIDATOR),
        annotation("after_png", png, ".png", BOX, VALIDATOR),
        created("after_jpeg", seed=1),
    ]
    with IngestState(state_path(tree)) as state:
        ingest = Ingest(tree, state, "p", max_bytes=64 << 20)
        for offset, (body, props) in enumerate(messages):
            ingest.add(offset, body, props)
        ingest.flush()
        ingest.close()
    summary = ingest.summary
    assert summary.events == {"Created": 3} and summary.quarantined == 1
    assert summary.quarantine_reasons == {"image over STREAM_IMAGE_SECONDS": 1}
    record = json.loads((quarantine_dir(tree) / f"{1:020d}.json").read_text())
    assert record["reason"] == "image over STREAM_IMAGE_SECONDS: not judged within 0.6 s of CPU"
    assert ingest.judges_started == 2  # the stuck child was replaced for the next PNG
    assert list(places(tree, "after_png")) == ["data"]
