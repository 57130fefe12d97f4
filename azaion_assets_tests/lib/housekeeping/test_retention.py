"""The retention plan on a real data tree: the windows, the champions a rollback needs, the
datasets kept models were trained on, and the never-touched list."""

import os
import time
from datetime import date, timedelta

from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.housekeeping.retention import (
    CHECKPOINTS,
    DATASET,
    MODEL,
    QUARANTINE,
    RELEASE,
    Facts,
    Retention,
    plan,
)

TODAY = date(2026, 12, 7)
KEEP = Retention(datasets_days=3, models_days=3, champions=1, quarantine_days=10)


def _day(ago: int) -> str:
    return (TODAY - timedelta(days=ago)).isoformat()


def _model(tree: DataTree, day: str, release: bool = False) -> None:
    weights = tree.model_dir(day) / "weights"
    weights.mkdir(parents=True)
    for name in ("best.pt", "last.pt", "epoch3.pt", "best.onnx"):
        (weights / name).write_bytes(b"w" * 10)
    (tree.model_dir(day) / "results.csv").write_text("epoch\n")
    if release:
        (tree.model_dir(day) / "release").mkdir()


def _decisions(tree: DataTree, facts: Facts | None = None) -> dict[tuple[str, str], tuple]:
    return {
        (d.kind, d.path.relative_to(tree.root).as_posix()): (d.remove, d.reason)
        for d in plan(tree, TODAY, KEEP, facts or Facts())
    }


def test_datasets_outside_the_window_go_unless_a_kept_model_was_trained_on_them(tree):
    for ago in (0, 2, 5, 9):
        tree.dataset_dir(_day(ago)).mkdir()
    _model(tree, _day(9))  # the champion, trained on day 9's dataset
    got = _decisions(tree, Facts(champions=(_day(9),)))
    assert got[(DATASET, f"datasets/azaion-{_day(0)}")][0] is False
    assert got[(DATASET, f"datasets/azaion-{_day(2)}")][0] is False
    assert got[(DATASET, f"datasets/azaion-{_day(5)}")] == (
        True,
        f"older than {_day(2)}, no kept model",
    )
    assert got[(DATASET, f"datasets/azaion-{_day(9)}")] == (False, "a kept model was trained on it")


def test_models_keep_the_window_the_champion_its_predecessors_and_what_was_released(tree):
    for ago in (1, 5, 6, 7, 8):
        _model(tree, _day(ago))
    facts = Facts(champions=(_day(8), _day(7), _day(6)), released=frozenset({_day(5)}))
    got = _decisions(tree, facts)
    reasons = {day: got[(MODEL, f"models/azaion-{day}")] for day in map(_day, (1, 5, 6, 7, 8))}
    assert reasons[_day(1)] == (False, "trained in the last 3 days (KEEP_MODELS_DAYS)")
    assert reasons[_day(5)] == (False, "released in the models window")
    assert reasons[_day(8)] == (False, "the live champion")
    assert reasons[_day(7)] == (False, "one of the 1 champions before it (KEEP_CHAMPIONS)")
    assert reasons[_day(6)][0] is True  # a third champion back: beyond KEEP_CHAMPIONS=1


def test_a_kept_model_loses_its_resumable_checkpoints_and_keeps_best_and_onnx(tree):
    _model(tree, _day(0))
    planned = {path for (kind, path), (remove, _) in _decisions(tree).items() if remove}
    weights = f"models/azaion-{_day(0)}/weights"
    assert planned == {f"{weights}/last.pt", f"{weights}/epoch3.pt"}
    assert all(k == CHECKPOINTS for k, p in _decisions(tree) if p in planned)


def test_old_release_parts_go_except_the_live_champions(tree):
    _model(tree, _day(20), release=True)  # the live champion, released long ago
    _model(tree, _day(15), release=True)  # kept as its predecessor; its parts are old
    _model(tree, _day(1), release=True)  # recent
    got = _decisions(tree, Facts(champions=(_day(20), _day(15))))
    assert (RELEASE, f"models/azaion-{_day(20)}/release") not in got
    assert got[(RELEASE, f"models/azaion-{_day(15)}/release")][0] is True
    assert (RELEASE, f"models/azaion-{_day(1)}/release") not in got


def test_stream_quarantine_goes_after_its_days_and_the_annotators_data_is_never_planned(tree):
    quarantine = tree.corrupted.root / "stream"
    quarantine.mkdir(parents=True)
    old, new = quarantine / "000000000001.json", quarantine / "000000000002.json"
    old.write_text("{}")
    new.write_text("{}")
    long_ago = time.mktime((TODAY - timedelta(days=40)).timetuple())
    os.utime(old, (long_ago, long_ago))
    for folder in (tree.data, tree.seed, tree.deleted):
        folder.create()
        (folder.labels / "x.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    os.utime(tree.data.labels / "x.txt", (long_ago, long_ago))
    (tree.models / "azaion.pt").write_bytes(b"champion")
    (tree.datasets / ".azaion-2026-01-01.staging").mkdir()  # hidden: staging, never listed
    got = _decisions(tree)
    old_key = (QUARANTINE, "data-corrupted/stream/000000000001.json")
    assert list(got) == [old_key]  # nothing of data/, data-seed/, data_deleted/ or the pair
    assert got[old_key] == (True, f"quarantined before {_day(9)}")
