import sqlite3
from collections import defaultdict
from contextlib import closing

import pytest

from azaion_assets.dev.messages import Author, synthetic
from azaion_assets.dev.synthetic import FRAME_TICKS, frame_source, write_samples
from azaion_assets.lib.dataset import forming
from azaion_assets.lib.dataset.formed_dataset import read_manifest
from azaion_assets.lib.dataset.forming import form_dataset
from azaion_assets.lib.dataset.split_record import SourceSplits, record_path, tally_dataset
from azaion_assets.lib.dataset.video_split import SPLITS, assign_split
from azaion_assets.lib.ingest.apply_events import Ingest, state_path
from azaion_assets.lib.ingest.ingest_state import IngestState
from azaion_assets.lib.labels.classes import load_classes, slot_names
from azaion_assets.lib.stream.events import Role

SPLIT = (70, 20, 10)
VALIDATOR = Author(Role.VALIDATOR, "val@azaion.com")


def _ingest(tree, messages, first=0):
    with IngestState(state_path(tree)) as state:
        ingest = Ingest(tree, state, f"p{first}", max_bytes=1 << 20)
        for i, (body, props) in enumerate(messages):
            ingest.add(first + i, body, props)
        ingest.flush()


def _frames(tree, count, videos, seed=0, prefix="cam", first=0):
    """Ingest ``count`` frames of ``videos`` videos; return {name: video}."""
    messages = list(synthetic(count, VALIDATOR, seed, prefix, videos, width=32, height=32))
    _ingest(tree, messages, first)
    with IngestState(state_path(tree)) as state:
        return {n: m for n, m in state.media().items() if n.startswith(f"{prefix}_{seed:04d}")}


def _form(tree, partition="2026-11-24", percentages=SPLIT):
    return form_dataset(tree, partition, percentages, slot_names(load_classes(tree.classes_file)))


def _splits_of(report) -> dict[str, str]:
    found = {}
    for split in SPLITS:
        for label in (report.path / split / "labels").glob("*.txt"):
            found[label.stem] = split
    return found


def _by_video(splits, videos) -> dict[str, set[str]]:
    out = defaultdict(set)
    for name, split in splits.items():
        out[videos[name]].add(split)
    return dict(out)


def _sql(tree, statement, *args):
    with closing(sqlite3.connect(record_path(tree))) as db:
        db.execute(statement, args)
        db.commit()


def test_frames_of_one_video_share_their_videos_split(tree):
    videos = _frames(tree, 60, 12)
    report = _form(tree)
    splits = _splits_of(report)
    assert len(splits) == 60
    by_video = _by_video(splits, videos)
    assert len(by_video) == 12 and all(len(s) == 1 for s in by_video.values())
    assert {v: s.pop() for v, s in by_video.items()} == {
        v: assign_split(v, SPLIT) for v in by_video
    }
    assert len({s for s in splits.values()}) == 3  # these 12 videos cover every split
    sources = report.sources
    assert sources is not None
    assert sources.frames == report.images and sources.grandfathered == 0
    expected = {s: len({v for n, v in videos.items() if splits[n] == s}) for s in SPLITS}
    assert sources.videos == expected and sources.straddling == []
    assert read_manifest(report.path)["sources"] == sources.to_json()


def test_annotations_without_a_source_are_each_their_own_group(tree):
    samples = write_samples(tree.data, 20, seed=4)
    report = _form(tree)
    assert _splits_of(report) == {s.name: assign_split(s.name, SPLIT) for s in samples}
    assert report.sources is not None
    assert report.sources.videos == report.images == report.sources.unsourced


def test_recorded_splits_are_kept_when_the_split_rule_changes(tree):
    _frames(tree, 30, 5)
    write_samples(tree.data, 10, seed=7)
    first = _splits_of(_form(tree, "2026-11-01"))
    _frames(tree, 10, 2, seed=1, prefix="new", first=100)  # new videos
    second = _splits_of(_form(tree, "2026-11-02", percentages=(0, 0, 100)))
    assert {n: second[n] for n in first} == first
    assert all(second[n] == "test" for n in second.keys() - first.keys())


def test_new_frames_join_the_recorded_split_of_their_video(tree):
    videos = _frames(tree, 10, 1, prefix="solo")
    (video,) = set(videos.values())
    first = _splits_of(_form(tree, "2026-11-01"))
    other = next(s for s in ("valid", "train") if s != assign_split(video, SPLIT))
    _sql(tree, "UPDATE groups SET split = ? WHERE grp = ?", other, video)
    more = _frames(tree, 5, 1, seed=1, prefix="solo", first=100)
    assert set(more.values()) == {video}  # the same video, later frames
    second = _splits_of(_form(tree, "2026-11-02"))
    assert {n: second[n] for n in first} == first  # the recorded frames stay
    assert {second[n] for n in more} == {other}  # the new ones join the recorded video split


def _old_dataset(tree, names, partition="2026-10-01"):
    """A dataset formed before the split record: every name where its hash put it."""
    folder = tree.dataset_dir(partition)
    for name in names:
        labels = folder / assign_split(name, SPLIT) / "labels"
        labels.mkdir(parents=True, exist_ok=True)
        (labels / f"{name}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return folder


def test_earlier_splits_are_seeded_from_the_newest_dataset_and_grandfathered(tree):
    old = _frames(tree, 40, 2)
    _old_dataset(tree, list(old)[:30], "2026-10-01")  # older, and overtaken by the next
    _old_dataset(tree, old, "2026-10-02")
    new = _frames(tree, 10, 2, seed=1, first=100)
    report = _form(tree)
    splits = _splits_of(report)
    assert {n: splits[n] for n in old} == {n: assign_split(n, SPLIT) for n in old}
    for video in set(old.values()):
        mine = [splits[n] for n in old if old[n] == video]
        majority = max(SPLITS, key=mine.count)
        assert {splits[n] for n in new if new[n] == video} <= {majority}
    grandfathered = sum(
        splits[n] != max(SPLITS, key=[splits[m] for m in old if old[m] == old[n]].count)
        for n in old
    )
    assert report.sources is not None and report.sources.grandfathered == grandfathered > 0
    stats, unlike = tally_dataset(tree, report.path)
    assert stats.to_json() == report.sources.to_json() and unlike == {}
    # Seeded once: a later dataset keeps them even where the rule would now differ.
    again = _splits_of(_form(tree, "2026-11-25", percentages=(0, 100, 0)))
    assert {n: again[n] for n in old} == {n: splits[n] for n in old}


def test_a_video_across_train_and_test_is_found_unless_grandfathered(tree):
    videos = _frames(tree, 12, 1, prefix="solo")
    (video,) = set(videos.values())
    first = _form(tree, "2026-11-01")
    stats, unlike = tally_dataset(tree, first.path)
    assert stats.straddling == [] and unlike == {}
    name = sorted(videos)[0]
    side = "test" if assign_split(video, SPLIT) != "test" else "train"
    _sql(tree, "UPDATE splits SET split = ? WHERE name = ?", side, name)
    second = _form(tree, "2026-11-02")
    stats, unlike = tally_dataset(tree, second.path)
    assert stats.straddling == [video] and unlike == {}
    assert second.sources is not None and second.sources.straddling == [video]
    _sql(tree, "UPDATE splits SET grandfathered = 1 WHERE name = ?", name)
    stats, _ = tally_dataset(tree, second.path)
    assert stats.straddling == [] and stats.grandfathered == 1
    _sql(tree, "UPDATE splits SET split = 'valid' WHERE name = ?", name)
    _, unlike = tally_dataset(tree, second.path)
    assert unlike == {name: f"in {side}, recorded in valid"}


def test_splits_are_recorded_before_the_dataset_is_swapped_in(tree, monkeypatch):
    write_samples(tree.data, 8, seed=2)

    def failing_commit(self, formed, frames):
        raise OSError("disk full")

    monkeypatch.setattr(SourceSplits, "commit", failing_commit)
    with pytest.raises(OSError, match="disk full"):
        _form(tree)
    assert not tree.dataset_dir("2026-11-24").exists()
    assert not list(tree.datasets.glob(".*staging*"))
    monkeypatch.undo()

    def failing_swap(staging, final):
        raise OSError("power cut")

    monkeypatch.setattr(forming, "replace_dir", failing_swap)
    with pytest.raises(OSError, match="power cut"):
        _form(tree)
    with closing(sqlite3.connect(record_path(tree))) as db:
        assert db.execute("SELECT count(*) FROM splits").fetchone() == (8,)


@pytest.mark.parametrize("seed", [0, 7])
def test_the_demo_set_has_videos_in_every_split(tree, seed):
    from azaion_assets.dev.demo import demo_messages

    batch, validated = demo_messages(96, seed)
    _ingest(tree, batch)
    report = _form(tree)
    assert report.sources is not None and sum(report.images.values()) == validated == 104
    assert all(report.sources.videos[s] > 0 for s in SPLITS), report.sources
    assert report.sources.unsourced == dict.fromkeys(SPLITS, 0)
    assert sum(report.sources.videos.values()) == 14 and report.sources.straddling == []


def test_synthetic_frames_run_in_videos_with_increasing_time():
    sources = [frame_source("cam", i, 10, 3) for i in range(10)]
    assert [m for m, _ in sources] == ["cam_flight_00.mp4"] * 4 + ["cam_flight_01.mp4"] * 3 + [
        "cam_flight_02.mp4"
    ] * 3
    assert [t / FRAME_TICKS for _, t in sources] == [0, 1, 2, 3, 0, 1, 2, 0, 1, 2]
