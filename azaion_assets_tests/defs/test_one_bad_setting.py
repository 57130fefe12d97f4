"""One bad setting never takes the code location down: ``TRAINING_EPOCHS=-3`` fails what trains,
naming the variable, while the location loads and the stream goes on being ingested."""

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from dagster import AssetKey, DagsterEventType, SensorResult, SkipReason, build_sensor_context

from azaion_assets.definitions import defs as load_defs
from azaion_assets.defs.annotations.ingest_job import INGEST_JOB
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.defs.training.retraining_job import RETRAINING_JOB
from azaion_assets.dev.messages import Author, synthetic
from azaion_assets.lib.stream.client import publish
from azaion_assets_tests.conftest import requested_keys

SENSOR_RESOURCES = {"azaion_settings": AzaionSettingsResource()}

BAD = {"TRAINING_EPOCHS": "-3"}


def test_the_location_validates_with_a_bad_training_value(tmp_path):
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, **BAD, "DAGSTER_HOME": str(tmp_path)}
    argv = [str(dagster), "definitions", "validate", "-m", "azaion_assets.definitions"]
    out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def _failure_messages(result) -> dict[str, str]:
    """Each failed step's error with its causes, as the run's page shows them."""
    return {
        str(event.step_key): event.step_failure_data.error.to_string()
        for event in result.all_events
        if event.event_type == DagsterEventType.STEP_FAILURE
    }


def test_a_bad_training_value_stops_training_naming_it_and_the_stream_still_ingests(
    stream_env, instance, monkeypatch
):
    monkeypatch.setenv("STREAM_BATCH_MESSAGES", "4")
    for name, value in BAD.items():
        monkeypatch.setenv(name, value)
    defs = load_defs()
    resources = {"azaion_settings": AzaionSettingsResource()}
    asyncio.run(publish(stream_env, synthetic(6, Author(), seed=3, width=32, height=32)))

    # The stream sensor asks for the new partitions and the ingest run lands them.
    stream_sensor = defs.get_sensor_def("annotation_stream_sensor")
    tick = stream_sensor(build_sensor_context(instance=instance, resources=resources))
    assert isinstance(tick, SensorResult), tick
    for request in tick.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    (run,) = tick.run_requests or []
    ingest = defs.resolve_job_def(INGEST_JOB).execute_in_process(instance=instance, tags=run.tags)
    assert ingest.success
    keys = requested_keys(tick)
    landed = instance.get_materialized_partitions(AssetKey("annotations"))
    assert len(keys) == 2 and landed == set(keys)

    # The retraining sensor skips, naming the variable.
    retrain_sensor = defs.get_sensor_def("retraining_sensor")
    skipped = retrain_sensor(build_sensor_context(resources=SENSOR_RESOURCES, instance=instance))
    assert isinstance(skipped, SkipReason) and "TRAINING_EPOCHS" in str(skipped.skip_message)

    # A training run started by hand fails its first step, naming the variable.
    today = datetime.now(UTC).date().isoformat()
    training = defs.resolve_job_def(RETRAINING_JOB).execute_in_process(
        instance=instance, partition_key=today, raise_on_error=False
    )
    assert not training.success
    failures = _failure_messages(training)
    assert list(failures) == ["dataset"]
    assert "TRAINING_EPOCHS: must be at least 1" in failures["dataset"]
    assert "-3" not in failures["dataset"]
