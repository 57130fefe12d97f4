"""Which annotations are new to a dataset, and the fair sample of them by source video."""

from azaion_assets.dev.messages import annotation
from azaion_assets.lib.evaluation.new_data import by_mode, new_annotations, sample_by_video
from azaion_assets.lib.stream.events import Status
from azaion_assets_tests.lib.dataset.test_split_record import VALIDATOR, _form, _frames, _ingest


def test_new_means_absent_from_the_dataset_or_changed_since(tree):
    before = _frames(tree, 12, 2)
    dataset = _form(tree).path
    assert new_annotations(tree.data, dataset) == {}
    later = _frames(tree, 6, 1, seed=1, first=100)
    edited = sorted(before)[0]
    image = (tree.data.images / f"{edited}.jpg").read_bytes()
    edit = annotation(edited, image, ".jpg", [(1, 0.5, 0.5, 0.3, 0.3)], VALIDATOR, Status.EDITED)
    _ingest(tree, [edit], first=200)
    assert set(new_annotations(tree.data, dataset)) == set(later) | {edited}


def test_an_identical_copy_in_the_dataset_is_not_new(tree):
    names = _frames(tree, 4, 1)
    dataset = _form(tree).path
    name = sorted(names)[0]
    for kind, ext in (("images", ".jpg"), ("labels", ".txt")):
        # A dataset on another file system holds copies, not links: same bytes, other inode.
        linked = next(dataset.glob(f"*/{kind}/{name}{ext}"))
        data = linked.read_bytes()
        linked.unlink()
        linked.write_bytes(data)
    assert new_annotations(tree.data, dataset) == {}


def test_each_video_gives_at_most_its_share_spread_over_its_length(tree):
    frames = _frames(tree, 30, 3)  # three videos of ten frames, in time order
    new = new_annotations(tree.data, tree.root / "no-dataset")
    sample = sample_by_video(tree, new, per_video=3, total=100)
    assert sample.candidates == 30 and sample.videos == 3 and len(sample.images) == 9
    picked = {p.stem for p in sample.images}
    for video in set(frames.values()):
        ordered = sorted(n for n, v in frames.items() if v == video)  # names follow time
        assert [n for n in ordered if n in picked] == [ordered[0], ordered[4], ordered[9]]
    fewer = sample_by_video(tree, new, per_video=3, total=4)
    assert fewer.videos == 3 and len(fewer.images) == 4  # the videos took turns
    assert sample_by_video(tree, new, 3, 100).images == sample.images  # the same sample again


def test_annotations_of_unknown_source_are_each_their_own_video(tree):
    from azaion_assets.dev.synthetic import write_samples

    write_samples(tree.data, 5, seed=3)  # no ingest state: no source known
    sample = sample_by_video(tree, new_annotations(tree.data, tree.root / "none"), 1, 100)
    assert sample.videos == 5 and len(sample.images) == 5


def test_a_weather_mode_scores_the_mean_of_its_classes_present():
    per_class = [
        {"slot": 0, "ap50_95": 0.4},
        {"slot": 6, "ap50_95": 0.2},
        {"slot": 20, "ap50_95": 0.1},
        {"slot": 45, "ap50_95": 0.3},
    ]
    assert by_mode(per_class) == {"Night": 0.3, "Norm": 0.3, "Wint": 0.1}
