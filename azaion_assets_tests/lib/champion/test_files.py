import json
import threading

from azaion_assets.lib.champion.files import (
    NO_CHAMPION,
    UNKNOWN,
    held_partition,
    publish,
    publish_pair,
    read_record,
    record_path,
)
from azaion_assets.lib.fsio.digest import sha256


def _record(target) -> dict:
    record = read_record(target)
    assert record is not None, f"no sidecar for {target}"
    return record


def _held(target) -> str:
    return _record(target)["partition"]


def _weights(tmp_path, name: str, content: bytes):
    path = tmp_path / "runs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_publish_writes_the_file_and_a_sidecar_naming_its_partition(tmp_path):
    target = tmp_path / "models" / "azaion.pt"
    result = publish(_weights(tmp_path, "a.pt", b"AAAA"), target, "2026-01-02")
    assert result.published and result.partition == "2026-01-02"
    assert target.read_bytes() == b"AAAA"
    record = json.loads(record_path(target).read_text())
    assert record["partition"] == "2026-01-02" and record["sha256"] == sha256(target)


def test_an_older_partition_never_replaces_a_newer_one(tmp_path):
    target = tmp_path / "models" / "azaion.pt"
    publish(_weights(tmp_path, "new.pt", b"NEW"), target, "2026-03-01")
    backfill = publish(_weights(tmp_path, "old.pt", b"OLD"), target, "2026-02-01")
    assert not backfill.published and backfill.partition == "2026-03-01"
    assert "from newer partition 2026-03-01" in backfill.reason
    assert target.read_bytes() == b"NEW" and _held(target) == "2026-03-01"
    # The same partition re-materialised does replace it, and so does a newer one.
    assert publish(_weights(tmp_path, "again.pt", b"AGAIN"), target, "2026-03-01").published
    assert publish(_weights(tmp_path, "next.pt", b"NEXT"), target, "2026-03-02").published
    assert target.read_bytes() == b"NEXT"


def test_concurrent_publishers_leave_the_newest_partition_and_a_matching_sidecar(tmp_path):
    target = tmp_path / "models" / "azaion.pt"
    days = [f"2026-04-{d:02d}" for d in range(1, 21)]
    sources = {d: _weights(tmp_path, f"{d}.pt", d.encode() * 1000) for d in days}
    threads = [threading.Thread(target=publish, args=(sources[d], target, d)) for d in days]
    for t in reversed(threads):
        t.start()
    for t in threads:
        t.join()
    assert _held(target) == "2026-04-20"
    assert target.read_bytes() == sources["2026-04-20"].read_bytes()
    assert _record(target)["sha256"] == sha256(target)
    assert sorted(p.name for p in target.parent.iterdir()) == [
        ".publish.lock",
        "azaion.pt",
        "azaion.pt.json",
    ]


def test_a_champion_without_a_believable_record_is_unknown_not_absent(tmp_path):
    target = tmp_path / "models" / "azaion.pt"
    assert held_partition(target) is None
    target.parent.mkdir(parents=True)
    target.write_bytes(b"deployed before azaion-assets")
    assert held_partition(target) == UNKNOWN  # no record: still a champion to beat
    publish(_weights(tmp_path, "a.pt", b"AAAA"), target, "2026-01-02")
    assert held_partition(target) == "2026-01-02"
    target.write_bytes(b"torn publish: new bytes, old record")
    assert held_partition(target) == UNKNOWN


def test_a_promotion_decided_against_another_champion_is_not_applied(tmp_path):
    target = tmp_path / "models" / "azaion.pt"
    publish(_weights(tmp_path, "a.pt", b"A"), target, "2026-01-01")
    manual = publish(_weights(tmp_path, "m.pt", b"M"), target, "2025-12-01", force=True)
    assert manual.published  # an operator's choice, older or not
    late = publish_pair(
        [(_weights(tmp_path, "b.pt", b"B"), target)], "2026-01-02", expected="2026-01-01"
    )
    assert not late.published and "changed to 2025-12-01" in late.reason
    assert target.read_bytes() == b"M"
    first = publish_pair(
        [(_weights(tmp_path, "c.pt", b"C"), tmp_path / "other" / "azaion.pt")],
        "2026-01-03",
        expected=NO_CHAMPION,
    )
    assert first.published


def test_a_pair_is_published_together_under_one_record_each(tmp_path):
    onnx, pt = tmp_path / "models" / "azaion.onnx", tmp_path / "models" / "azaion.pt"
    files = [(_weights(tmp_path, "b.onnx", b"ONNX"), onnx), (_weights(tmp_path, "b.pt", b"PT"), pt)]
    assert publish_pair(files, "2026-02-02", extra={"promotion": "automatic"}).published
    assert _held(onnx) == _held(pt) == "2026-02-02"
    assert _record(pt)["promotion"] == "automatic"
