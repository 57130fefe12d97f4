"""``housekeeping_job`` on a real instance and data tree: the champions come from the instance,
a dry run only reports, a real run removes and says so on the pruned partitions' pages."""

from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetKey, AssetMaterialization, DagsterInstance, materialize

from azaion_assets.defs.housekeeping.housekeeping_job import housekeeping_job
from azaion_assets.defs.location import build_definitions
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.dev.synthetic import write_samples
from azaion_assets.lib.champion.files import publish_pair
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.housekeeping.retention import dated_folders
from azaion_assets_tests.dated import dataset, dataset_labels_valid, dataset_splits_non_empty

RESOURCES = {"azaion_settings": AzaionSettingsResource()}
TODAY = datetime.now(UTC).date()


def _day(ago: int) -> str:
    return (TODAY - timedelta(days=ago)).isoformat()


@pytest.fixture
def days(tree: DataTree, instance: DagsterInstance, monkeypatch) -> DataTree:
    """Models and datasets of today and of 10, 20 and 30 days ago; the champion is 30 days old,
    promoted after the one of 20 days ago."""
    monkeypatch.setenv("KEEP_DATASETS_DAYS", "5")
    monkeypatch.setenv("KEEP_MODELS_DAYS", "5")
    monkeypatch.setenv("KEEP_CHAMPIONS", "0")
    for ago in (0, 10, 20, 30):
        weights = tree.model_dir(_day(ago)) / "weights"
        weights.mkdir(parents=True)
        (weights / "best.pt").write_bytes(b"b" * 1000)
        (weights / "last.pt").write_bytes(b"l" * 500)
        tree.dataset_dir(_day(ago)).mkdir()
    for day in (_day(20), _day(30)):
        instance.report_runless_asset_event(
            AssetMaterialization("champion", metadata={"partition": day})
        )
    return tree


def _metadata(result) -> dict:
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    entries = output.event_specific_data.metadata  # type: ignore[union-attr]
    return {k: getattr(v, "value", v) for k, v in entries.items()}


def test_a_dry_run_reports_what_it_would_remove_and_removes_nothing(days, instance, monkeypatch):
    monkeypatch.setenv("HOUSEKEEPING_DRY_RUN", "true")
    result = housekeeping_job.execute_in_process(instance=instance, resources=RESOURCES)
    assert result.success
    meta = _metadata(result)
    assert meta["dry_run"] is True
    assert meta["would_remove"]["model"] == {"count": 2, "bytes": 3000}
    assert meta["bytes_to_free"] == 3000 + 1000  # two models; two kept models' last.pt
    assert set(dated_folders(days.models)) == {_day(0), _day(10), _day(20), _day(30)}
    assert not instance.fetch_observations(AssetKey("model"), limit=10).records


def test_a_run_keeps_the_live_champion_and_marks_what_it_removed(days, instance):
    result = housekeeping_job.execute_in_process(instance=instance, resources=RESOURCES)
    assert result.success
    assert set(dated_folders(days.models)) == {_day(0), _day(30)}  # the window, the champion
    assert set(dated_folders(days.datasets)) == {_day(0), _day(30)}  # and what they trained on
    assert not (days.model_dir(_day(30)) / "weights" / "last.pt").exists()
    assert (days.model_dir(_day(30)) / "weights" / "best.pt").exists()
    meta = _metadata(result)
    assert meta["removed"]["model"] == {"count": 2, "bytes": 3000}
    assert meta["kept"]["model: the live champion"] == 1
    observed = instance.fetch_observations(AssetKey("model"), limit=10).records
    pruned = {r.partition_key: r.asset_observation.metadata for r in observed}  # type: ignore
    assert set(pruned) == {_day(10), _day(20)}
    assert pruned[_day(10)]["pruned_by_run"].value == result.run_id  # type: ignore[union-attr]

    again = housekeeping_job.execute_in_process(instance=instance, resources=RESOURCES)
    assert _metadata(again)["removed"] == {}  # nothing left to remove


def test_the_location_schedules_it_daily_and_on_by_default():
    schedule = build_definitions().resolve_schedule_def("housekeeping_schedule")
    assert schedule.cron_schedule == "30 3 * * *"
    assert schedule.default_status.value == "RUNNING"
    assert schedule.job_name == "housekeeping_job"


def test_a_pruned_dataset_is_formed_again_when_materialised(tree, instance, monkeypatch):
    monkeypatch.setenv("KEEP_DATASETS_DAYS", "5")
    write_samples(tree.data, 20, seed=3)
    old = _day(20)

    def form() -> bool:
        return materialize(
            [dataset, dataset_splits_non_empty, dataset_labels_valid],
            selection=[dataset],
            instance=instance,
            partition_key=old,
            resources=RESOURCES,
        ).success

    assert form() and tree.dataset_dir(old).is_dir()
    assert housekeeping_job.execute_in_process(instance=instance, resources=RESOURCES).success
    assert not tree.dataset_dir(old).exists()
    (observed,) = instance.fetch_observations(AssetKey("dataset"), limit=10).records
    assert observed.partition_key == old
    assert form() and len(list((tree.dataset_dir(old) / "train" / "images").iterdir())) > 0


def test_the_pair_on_disk_names_the_live_champion_where_the_instance_does_not(days, instance):
    """A champion promoted outside this instance (by hand, or before it was started afresh)."""
    weights = days.model_dir(_day(10)) / "weights" / "best.pt"
    publish_pair([(weights, days.champion)], _day(10), force=True)
    result = housekeeping_job.execute_in_process(instance=instance, resources=RESOURCES)
    assert result.success
    assert _day(10) in dated_folders(days.models)
    assert _metadata(result)["kept"]["model: the live champion"] == 1
    assert _metadata(result)["left_for_a_later_run"] == []
