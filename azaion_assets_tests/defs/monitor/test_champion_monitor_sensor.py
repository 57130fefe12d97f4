"""champion_monitor_sensor on a real SQLite instance: when it scores the champion, and why not."""

from dagster import DagsterRunStatus, RunRequest, SkipReason, build_sensor_context

from azaion_assets.defs.monitor.champion_monitor_sensor import build_champion_monitor_sensor
from azaion_assets_tests.defs.training.test_retraining_sensor import (
    SENSOR_RESOURCES,
    _annotations,
    _champion,
    _dataset,
    _run,
    _score,
)

SENSOR = build_champion_monitor_sensor(60)


def _tick(instance) -> RunRequest | SkipReason:
    result = SENSOR(build_sensor_context(resources=SENSOR_RESOURCES, instance=instance))
    assert isinstance(result, (RunRequest, SkipReason)), result
    return result


def _skip(instance) -> str:
    result = _tick(instance)
    assert isinstance(result, SkipReason), result
    return result.skip_message or ""


def test_scores_once_enough_new_data_arrived_since_the_champions_last_score(instance, monkeypatch):
    monkeypatch.setenv("MONITOR_MIN_NEW_VALIDATED", "50")
    assert _skip(instance) == "no champion yet: nothing to score"
    _annotations(instance, "000000000000-000000000999", 500)  # formed into its dataset
    _dataset(instance, "2026-11-18")
    _champion(instance, "2026-11-18")
    _annotations(instance, "000000001000-000000001999", 30)
    assert _skip(instance) == (
        "30 of 50 new validated annotations since dataset 2026-11-18 (champion 2026-11-18): "
        "below MONITOR_MIN_NEW_VALIDATED"
    )
    _annotations(instance, "000000002000-000000002999", 20)
    request = _tick(instance)
    assert isinstance(request, RunRequest) and request.tags["azaion/new_validated"] == "50"
    again = _tick(instance)
    assert isinstance(again, RunRequest) and again.run_key == request.run_key  # the same data
    _score(instance, "2026-11-18", new=0.4, test=0.45, images=50)
    assert _skip(instance).startswith("0 of 50 new validated annotations since its last score")
    # A new champion counts from its own dataset, whatever the last score was.
    _dataset(instance, "2026-11-19")
    _champion(instance, "2026-11-19")
    _annotations(instance, "000000003000-000000003999", 60)
    assert isinstance(_tick(instance), RunRequest)


def test_the_segments_of_an_open_partition_add_up(instance, monkeypatch):
    """A partition filled by several ingest runs: each run's segment brings its own names."""
    monkeypatch.setenv("MONITOR_MIN_NEW_VALIDATED", "50")
    block = "000000000000-000000000999"
    _annotations(instance, block, names=[f"old{i}" for i in range(500)])
    _dataset(instance, "2026-11-18")
    _champion(instance, "2026-11-18")
    _annotations(instance, block, names=[f"a{i}" for i in range(30)])
    assert _skip(instance).startswith("30 of 50 new validated annotations since dataset")
    _annotations(instance, block, names=[f"b{i}" for i in range(20)])
    request = _tick(instance)
    assert isinstance(request, RunRequest) and request.tags["azaion/new_validated"] == "50"


def test_never_beside_a_training(instance, monkeypatch):
    monkeypatch.setenv("MONITOR_MIN_NEW_VALIDATED", "1")
    _champion(instance, "2026-11-18")
    _annotations(instance, "000000000000-000000000999", 5)
    run = _run(instance, {"azaion/stage": "train"}, DagsterRunStatus.STARTED)
    assert _skip(instance) == (
        f"training in progress: run {run.run_id[:8]} is STARTED; scoring waits"
    )
    instance.report_run_failed(run)
    assert isinstance(_tick(instance), RunRequest)


def test_a_configuration_problem_is_a_skip_that_names_it(instance, monkeypatch):
    monkeypatch.setenv("MONITOR_MIN_NEW_VALIDATED", "0")
    assert _skip(instance) == "settings to fix: MONITOR_MIN_NEW_VALIDATED: must be at least 1"
