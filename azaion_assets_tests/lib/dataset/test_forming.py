import json
import os
import shutil

import pytest
import yaml

from azaion_assets.dev.synthetic import write_samples
from azaion_assets.lib.dataset.formed_dataset import read_manifest
from azaion_assets.lib.dataset.forming import form_dataset
from azaion_assets.lib.dataset.video_split import assign_split
from azaion_assets.lib.labels.classes import load_classes, slot_names

SPLIT = (70, 20, 10)


def _form(tree, partition="2026-11-24"):
    return form_dataset(tree, partition, SPLIT, slot_names(load_classes(tree.classes_file)))


def test_dataset_holds_every_valid_annotation_in_its_stable_split(tree):
    samples = write_samples(tree.data, 40, seed=3)
    report = _form(tree)
    assert sum(report.images.values()) == 40 and report.corrupted == {}
    for sample in samples:
        split = assign_split(sample.name, SPLIT)
        image = report.path / split / "images" / f"{sample.name}.jpg"
        label = report.path / split / "labels" / f"{sample.name}.txt"
        assert image.is_file() and label.is_file()
        # hardlinked, not copied: same inode as the source
        assert os.stat(image).st_ino == os.stat(tree.data.images / f"{sample.name}.jpg").st_ino
    boxes = sum(len(s.boxes) for s in samples)
    assert sum(sum(c.values()) for c in report.boxes.values()) == boxes


def test_data_yaml_and_manifest(tree):
    write_samples(tree.data, 10, seed=1)
    report = _form(tree)
    data = yaml.safe_load((report.path / "data.yaml").read_text())
    assert data["nc"] == 80 and data["names"][20] == "ArmorVehicle(Wint)"
    assert (data["train"], data["val"], data["test"]) == (
        "train/images",
        "valid/images",
        "test/images",
    )
    assert data["path"] == str(report.path.resolve())
    manifest = read_manifest(report.path)
    assert manifest["data_version"] == report.data_version and manifest["images"] == report.images


def test_split_is_stable_when_the_dataset_grows(tree):
    first = write_samples(tree.data, 30, seed=1)
    day1 = _form(tree, "2026-11-01")
    write_samples(tree.data, 30, seed=2)
    day2 = _form(tree, "2026-11-02")
    for sample in first:
        in_day1 = [
            s
            for s in ("train", "valid", "test")
            if (day1.path / s / "labels" / f"{sample.name}.txt").exists()
        ]
        in_day2 = [
            s
            for s in ("train", "valid", "test")
            if (day2.path / s / "labels" / f"{sample.name}.txt").exists()
        ]
        assert in_day1 == in_day2 and len(in_day1) == 1


def test_invalid_labels_are_moved_aside_with_their_reason(tree):
    write_samples(tree.data, 5, seed=1)
    (tree.data.labels / "bad.txt").write_text("0 0.5 0.5 0.2\n")
    (tree.data.images / "bad.jpg").write_bytes(b"jpeg")
    (tree.data.labels / "outside.txt").write_text("85 0.5 0.5 0.2 0.2\n")
    (tree.data.images / "outside.png").write_bytes(b"png")
    report = _form(tree)
    assert set(report.corrupted) == {"bad", "outside"}
    assert "expected 5 fields" in report.corrupted["bad"]
    assert not (tree.data.labels / "bad.txt").exists()
    assert (tree.corrupted.images / "bad.jpg").read_bytes() == b"jpeg"
    assert (tree.corrupted.labels / "outside.txt").exists()
    reason = json.loads((tree.corrupted.root / "reasons" / "outside.json").read_text())
    assert "class id 85" in reason["reason"] and reason["origin"] == "dataset 2026-11-24"
    assert sum(report.images.values()) == 5
    for split in ("train", "valid", "test"):
        assert not (report.path / split / "labels" / "bad.txt").exists()


def test_unpaired_files_are_left_in_place_and_reported(tree):
    write_samples(tree.data, 3, seed=1)
    (tree.data.images / "inflight.jpg").write_bytes(b"x")
    (tree.data.labels / "orphan.txt").write_text("")
    (tree.data.labels / ".tmp.partial").write_text("garbage")
    report = _form(tree)
    assert report.unpaired == {
        "inflight": "image has no label file",
        "orphan": "label has no image",
    }
    assert (tree.data.images / "inflight.jpg").exists() and (
        tree.data.labels / "orphan.txt"
    ).exists()
    assert report.corrupted == {}


def test_two_images_with_one_name_are_quarantined(tree):
    (tree.data.labels / "twin.txt").write_text("")
    (tree.data.images / "twin.jpg").write_bytes(b"a")
    (tree.data.images / "twin.png").write_bytes(b"b")
    report = _form(tree)
    assert report.corrupted == {"twin": "several images share this name"}
    assert sorted(p.name for p in tree.corrupted.images.iterdir()) == ["twin.jpg", "twin.png"]


def test_data_version_tracks_the_source_snapshot(tree):
    write_samples(tree.data, 8, seed=1)
    v1 = _form(tree).data_version
    assert _form(tree).data_version == v1  # nothing changed
    label = sorted(tree.data.labels.iterdir())[0]
    label.write_text("1 0.5 0.5 0.1 0.1\n")
    assert _form(tree).data_version != v1


def test_reforming_replaces_the_dataset_whole(tree):
    write_samples(tree.data, 6, seed=1)
    first = _form(tree)
    stale = first.path / "train" / "images" / "stale.jpg"
    stale.write_bytes(b"x")
    second = _form(tree)
    assert not stale.exists()
    visible = sorted(p.name for p in tree.datasets.iterdir() if not p.name.startswith("."))
    assert visible == ["azaion-2026-11-24"]
    assert not list(tree.datasets.glob(".*staging*"))
    assert second.images == first.images


def test_a_crashed_staging_directory_is_cleaned_up(tree):
    write_samples(tree.data, 4, seed=1)
    leftover = tree.datasets / ".azaion-2026-11-24.staging-crashed" / "train" / "images"
    leftover.mkdir(parents=True)
    (leftover / "half.jpg").write_bytes(b"x")
    report = _form(tree)
    assert not (tree.datasets / ".azaion-2026-11-24.staging-crashed").exists()
    assert sum(report.images.values()) == 4


def test_the_helper_process_path_forms_the_same_dataset(tree, monkeypatch):
    from azaion_assets.lib.dataset import forming

    write_samples(tree.data, 30, seed=4)
    inline = _form(tree, "2026-11-01")
    monkeypatch.setattr(forming, "_HELPER_PROCESS_FROM", 1)
    monkeypatch.setattr(forming, "_SLICE", 7)  # several slices in flight
    helper = _form(tree, "2026-11-02")
    assert helper.images == inline.images and helper.data_version == inline.data_version
    for split in ("train", "valid", "test"):
        assert sorted(p.name for p in (helper.path / split / "images").iterdir()) == sorted(
            p.name for p in (inline.path / split / "images").iterdir()
        )


def test_a_link_failure_fails_the_dataset_and_leaves_no_partial_one(tree, monkeypatch):
    write_samples(tree.data, 5, seed=4)

    def broken_link(*args, **kwargs):
        raise PermissionError("link refused")

    monkeypatch.setattr(os, "link", broken_link)
    monkeypatch.setattr(shutil, "copy2", broken_link)
    with pytest.raises(PermissionError, match="link refused"):
        _form(tree)
    assert not tree.dataset_dir("2026-11-24").exists()


def test_an_error_in_the_helper_process_fails_the_dataset_and_leaves_no_partial_one(
    tree, monkeypatch
):
    from azaion_assets.lib.dataset import forming, slices

    write_samples(tree.data, 5, seed=4)
    plan = slices.Former.plan

    def plan_one_link_twice(self, names, batch):
        links = plan(self, names, batch)
        return links + links[:1]  # the second link of one file fails in the helper: EEXIST

    monkeypatch.setattr(forming, "_HELPER_PROCESS_FROM", 1)
    monkeypatch.setattr(slices.Former, "plan", plan_one_link_twice)
    with pytest.raises(FileExistsError):
        _form(tree)
    assert not tree.dataset_dir("2026-11-24").exists()
    assert not list(tree.datasets.glob(".*staging*"))


def _hook_link(monkeypatch, before=None, after=None):
    """Run ``before``/``after`` around the linking of each slice (writers racing the run)."""
    from azaion_assets.lib.fsio import linking

    real = linking.link_slice

    def hooked(*args):
        if before:
            before()
        result = real(*args)
        if after:
            after()
        return result

    monkeypatch.setattr(linking, "link_slice", hooked)


def _replace_by_rename(path, text):
    """How every writer in the pipeline replaces a file (atomic write): a new inode."""
    tmp = path.with_name(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_the_checked_label_is_the_published_one_even_if_data_changes_after(tree, monkeypatch):
    (sample,) = write_samples(tree.data, 1, seed=9)
    label = tree.data.labels / f"{sample.name}.txt"
    good = label.read_text()
    _hook_link(monkeypatch, after=lambda: _replace_by_rename(label, "99 0.5 0.5 0.1 0.1\n"))
    report = _form(tree)
    assert report.corrupted == {} and sum(report.images.values()) == 1
    split = assign_split(sample.name, SPLIT)
    assert (report.path / split / "labels" / label.name).read_text() == good
    assert label.read_text().startswith("99")  # the newer version waits for the next dataset


def test_a_label_replaced_by_an_invalid_one_before_linking_is_quarantined(tree, monkeypatch):
    (sample,) = write_samples(tree.data, 1, seed=9)
    label = tree.data.labels / f"{sample.name}.txt"
    _hook_link(monkeypatch, before=lambda: _replace_by_rename(label, "99 0.5 0.5 0.1 0.1\n"))
    report = _form(tree)
    assert "class id 99" in report.corrupted[sample.name]
    assert sum(report.images.values()) == 0
    assert (tree.corrupted.labels / label.name).read_text().startswith("99")
    assert not label.exists() and not (tree.data.images / f"{sample.name}.jpg").exists()
    staged = list(report.path.rglob(f"{sample.name}.*"))
    assert staged == []


def test_files_that_vanish_mid_run_are_reported_not_fatal(tree, monkeypatch):
    samples = write_samples(tree.data, 3, seed=2)
    victim = tree.data.labels / f"{samples[0].name}.txt"
    _hook_link(monkeypatch, before=lambda: victim.unlink(missing_ok=True))
    report = _form(tree)
    assert report.unpaired == {samples[0].name: "vanished while the dataset was formed"}
    assert sum(report.images.values()) == 2
    assert not list(report.path.rglob(f"{samples[0].name}.*"))


def test_a_label_with_a_byte_order_mark_is_valid(tree):
    (sample,) = write_samples(tree.data, 1, seed=3)
    label = tree.data.labels / f"{sample.name}.txt"
    label.write_bytes(b"\xef\xbb\xbf" + label.read_bytes())
    report = _form(tree)
    assert report.corrupted == {} and sum(report.images.values()) == 1


def test_repeat_quarantines_keep_the_earlier_evidence(tree):
    for content in ("0 0.5\n", "1 0.5 0.5\n"):
        (tree.data.labels / "bad.txt").write_text(content)
        (tree.data.images / "bad.jpg").write_bytes(b"img")
        _form(tree)
    assert sorted(p.name for p in tree.corrupted.labels.iterdir()) == ["bad.1.txt", "bad.txt"]
    assert sorted(p.name for p in (tree.corrupted.root / "reasons").iterdir()) == [
        "bad.1.json",
        "bad.json",
    ]
    assert (tree.corrupted.labels / "bad.txt").read_text() == "0 0.5\n"


def test_the_data_version_covers_the_split(tree):
    write_samples(tree.data, 6, seed=1)
    names = slot_names(load_classes(tree.classes_file))
    a = form_dataset(tree, "2026-11-01", (70, 20, 10), names).data_version
    b = form_dataset(tree, "2026-11-02", (60, 20, 20), names).data_version
    assert a != b
