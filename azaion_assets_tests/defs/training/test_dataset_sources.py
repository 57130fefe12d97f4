"""The dataset asset by source video: its metadata, its manifest and its check, in Dagster."""

from typing import Any

from dagster import AssetKey, DagsterInstance, materialize

from azaion_assets.defs.annotations.annotations import annotations
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.dataset.formed_dataset import read_manifest
from azaion_assets.lib.dataset.video_split import SPLITS
from azaion_assets_tests.dated import (
    dataset,
    dataset_labels_valid,
    dataset_no_video_across_train_and_test,
    dataset_splits_non_empty,
)
from azaion_assets_tests.lib.dataset.test_split_record import (
    _by_video,
    _form,
    _frames,
    _old_dataset,
    _splits_of,
    _sql,
)

CHECK = "dataset_no_video_across_train_and_test"


def _materialize(instance: DagsterInstance, partition: str):
    result = materialize(
        [
            annotations,
            dataset,
            dataset_splits_non_empty,
            dataset_labels_valid,
            dataset_no_video_across_train_and_test,
        ],
        selection=[dataset],
        instance=instance,
        partition_key=partition,
        resources={"azaion_settings": AzaionSettingsResource()},
        raise_on_error=False,
    )
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    event = instance.get_latest_materialization_event(AssetKey("dataset"))
    assert event is not None and event.asset_materialization is not None
    meta: dict[str, Any] = {
        k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()
    }
    return checks[CHECK], meta


def _values(evaluation) -> dict:
    return {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}


def test_videos_per_split_and_a_check_that_allows_only_grandfathered_straddlers(tree):
    old = _frames(tree, 40, 2)
    _old_dataset(tree, old)  # formed by name before this change: both videos in train and test
    assert all({"train", "test"} <= s for s in _by_video(_splits_of(_form(tree)), old).values())
    more = _frames(tree, 36, 12, prefix="cam2", first=100)
    with DagsterInstance.ephemeral() as instance:
        check, meta = _materialize(instance, "2026-11-25")
        assert check.passed
        values = _values(check)
        assert values["videos_across_train_and_test"] == 0
        assert values["grandfathered_frames"] > 0 and values["videos_with_grandfathered_frames"]
        assert values["not_in_recorded_split"] == 0

        assert sum(meta[f"frames_{s}"] for s in SPLITS) == meta["images"] == 76
        splits = _splits_of_partition(tree, "2026-11-25")
        videos = {**old, **more}
        for split in SPLITS:
            assert meta[f"videos_{split}"] == len({videos[n] for n in splits if splits[n] == split})
            assert meta[f"frames_{split}"] == meta[f"images_{split}"]
        assert meta["grandfathered"] == values["grandfathered_frames"]
        assert meta["videos_across_train_and_test"] == 0
        table = meta["videos_by_split"]
        assert [r.data["frames"] for r in table.records] == [meta[f"frames_{s}"] for s in SPLITS]
        manifest = read_manifest(tree.dataset_dir("2026-11-25"))["sources"]
        assert manifest["grandfathered"] == meta["grandfathered"]
        assert manifest["videos"] == {s: meta[f"videos_{s}"] for s in SPLITS}

        # A frame that followed its video's split moved to the other side of it: a straddler.
        name = next(n for n in sorted(more) if splits[n] in ("train", "test"))
        other = "test" if splits[name] == "train" else "train"
        _sql(tree, "UPDATE splits SET split = ? WHERE name = ?", other, name)
        check, meta = _materialize(instance, "2026-11-26")
        assert not check.passed
        assert _values(check)["videos_across_train_and_test"] == 1
        assert more[name] in _values(check)["videos_sample"]
        assert meta["videos_across_train_and_test"] == 1


def _splits_of_partition(tree, partition: str) -> dict[str, str]:
    folder = tree.dataset_dir(partition)
    return {p.stem: s for s in SPLITS for p in (folder / s / "labels").glob("*.txt")}
