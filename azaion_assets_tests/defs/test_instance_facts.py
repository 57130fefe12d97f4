"""What the stages read of each other from the instance, on a real SQLite instance."""

import time
from types import SimpleNamespace

from dagster import AssetMaterialization, MetadataValue
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.test_utils import create_run_for_test

from azaion_assets.defs import instance_facts
from azaion_assets.defs.instance_facts import changed_since, cutoff_of


def _annotations(instance, key: str, names: list[str]) -> None:
    metadata = {
        "validated": len(names),
        "validated_names": MetadataValue.json(names),
        "left_data_names": MetadataValue.json([]),
    }
    instance.report_runless_asset_event(
        AssetMaterialization("annotations", partition=key, metadata=metadata)
    )
    time.sleep(0.01)  # distinct timestamps either side of the run's start


def test_new_annotations_are_those_recorded_after_the_run_started_found_by_storage_id(
    instance, monkeypatch
):
    """The cutoff of a dataset made by a run: annotations recorded after the run started. It
    carries the storage id of the newest segment an hour (here: no time) before the start, so
    the replay reads from there and not from the first segment ever; the count is the same."""
    monkeypatch.setattr(instance_facts, "_SLACK", 0.0)
    _annotations(instance, "000000000000-000000000999", ["a1", "a2", "a3"])
    run = create_run_for_test(instance, job_name="retraining_job")
    start = DagsterEvent(DagsterEventType.RUN_START.value, job_name="retraining_job")
    instance.report_dagster_event(start, run.run_id)
    time.sleep(0.01)
    _annotations(instance, "000000001000-000000001999", ["b1", "b2", "b3", "b4"])

    cutoff = cutoff_of(instance, SimpleNamespace(run_id=run.run_id, storage_id=0))  # type: ignore[arg-type]
    started = instance.get_run_record_by_id(run.run_id).start_time
    assert cutoff["after_timestamp"] == started
    first = instance.fetch_materializations(instance_facts.ANNOTATIONS, limit=2).records[-1]
    assert cutoff["after_storage_id"] == first.storage_id  # the segment before the start
    changed = changed_since(instance, cutoff)
    assert (changed.validated, changed.segments) == (4, 1)
