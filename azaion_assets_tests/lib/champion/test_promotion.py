"""Promotion: the champion pair is published from a partition whose export still vouches for
its bytes, under the publish lock; an operator's promotion overrides the partition order."""

import pytest

from azaion_assets.lib.champion.files import publish, read_record


def test_a_forced_promotion_overrides_the_partition_order_and_records_why(tmp_path):
    target = tmp_path / "models" / "azaion.pt"
    (tmp_path / "new.pt").write_bytes(b"NEW")
    (tmp_path / "old.pt").write_bytes(b"OLD")
    publish(tmp_path / "new.pt", target, "2026-03-01")
    assert not publish(tmp_path / "old.pt", target, "2026-02-01").published
    forced = publish(
        tmp_path / "old.pt", target, "2026-02-01", extra={"promotion": "manual"}, force=True
    )
    assert forced.published and target.read_bytes() == b"OLD"
    record = read_record(target)
    assert record is not None and record["partition"] == "2026-02-01"
    assert record["promotion"] == "manual"


def test_the_export_is_checked_under_the_publish_lock_and_a_changed_one_refused(
    tree, tmp_path, monkeypatch
):
    """onnx_model installs an export under the publish lock; promote checks it under the same
    lock, so the file it copies is the file whose record it checked."""
    import fcntl

    from azaion_assets.lib.champion import promotion
    from azaion_assets.lib.champion.promotion import NotPromotable, promote
    from azaion_assets.lib.evaluation.export import install_export
    from azaion_assets.lib.evaluation.parity import Parity
    from azaion_assets_tests.lib.evaluation.test_export import _tiny_onnx

    weights = tree.model_dir("2026-12-01") / "weights" / "best.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"weights")
    passed = Parity(8, 64, "boxes", 20, 20, 0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, True)
    install_export(_tiny_onnx(tmp_path / "staged.onnx"), weights, passed)
    real = promotion.verified_export
    held = []

    def checked_while_locked(*args):
        with open(tree.models / ".publish.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append(False)
            except BlockingIOError:
                held.append(True)
        return real(*args)

    monkeypatch.setattr(promotion, "verified_export", checked_while_locked)
    assert promote(tree, "2026-12-01", {}).published and held == [True]
    assert tree.champion_onnx.read_bytes() == weights.with_suffix(".onnx").read_bytes()

    before = tree.champion_onnx.read_bytes()
    weights.with_suffix(".onnx").write_bytes(before + b"\0")  # swapped after the export
    with pytest.raises(NotPromotable, match="not the file that passed parity"):
        promote(tree, "2026-12-01", {}, force=True)
    assert tree.champion_onnx.read_bytes() == before  # nothing copied
