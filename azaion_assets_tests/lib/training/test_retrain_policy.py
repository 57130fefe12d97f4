"""The retraining policy's words and run tags, without Dagster: what the operator reads under
the sensor's ticks, and the tags a training run shows on its page."""

import json

import pytest

from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.training.retrain_policy import (
    Facts,
    decide,
    plural,
    training_run_tags,
)

TODAY = "2026-11-20"


def facts(**changes) -> Facts:
    values = {
        "today": TODAY,
        "active_training": None,
        "dataset_today": None,
        "requested_today": None,
        "last_dataset": "2026-11-19",
        "new_validated": 12,
        "new_partitions": 2,
    }
    return Facts(**{**values, **changes})


def test_plural_counts_one_and_many():
    assert plural(0, "annotation") == "0 annotations"
    assert plural(1, "annotation") == "1 annotation"
    assert plural(2, "annotation") == "2 annotations"


def test_below_the_threshold_the_figure_comes_first_and_names_the_variable():
    decision = decide(facts(), 50)
    assert not decision.request
    assert decision.reason == (
        "12 of 50 new validated annotations: below RETRAIN_MIN_NEW_VALIDATED "
        "(2 partitions since dataset 2026-11-19)"
    )


def test_singular_counts_read_as_singular():
    reason = decide(facts(new_validated=0, new_partitions=1, last_dataset=None), 1).reason
    assert reason == (
        "0 of 1 new validated annotation: below RETRAIN_MIN_NEW_VALIDATED "
        "(1 partition, no dataset yet)"
    )
    busy = decide(facts(active_training="run daa00b11 is STARTED", new_validated=1), 5).reason
    assert (
        busy == "training in progress: run daa00b11 is STARTED; 1 new validated annotation waiting"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"active_training": "run daa00b11 is STARTED", "new_validated": 500},
            "training in progress: run daa00b11 is STARTED; 500 new validated annotations waiting",
        ),
        (
            {"dataset_today": "formed at 09:14 UTC by run 1a2b3c4d"},
            f"dataset {TODAY} already formed at 09:14 UTC by run 1a2b3c4d: one a day; "
            "launch retraining_job to force another",
        ),
        (
            {"requested_today": "run 1a2b3c4d ended FAILURE"},
            "today's retraining run 1a2b3c4d ended FAILURE: one a day; "
            "re-execute it or launch retraining_job",
        ),
    ],
    ids=["training", "dataset-today", "requested-today"],
)
def test_every_reason_not_to_retrain_is_one_short_line(change, reason):
    decision = decide(facts(**change), 1)
    assert not decision.request and decision.reason == reason
    assert len(decision.reason) <= 120


def test_enough_new_data_requests_and_says_why():
    decision = decide(facts(new_validated=105, new_partitions=3), 100)
    assert decision.request
    assert decision.reason == (
        "105 new validated annotations in 3 partitions since dataset 2026-11-19 "
        "(threshold 100): retraining"
    )


def test_training_runs_carry_no_kubernetes_tag_unless_runs_are_kubernetes_jobs():
    tags = training_run_tags(Settings(training_device="0"))
    assert tags == {
        "azaion/stage": "train",
        "azaion/gpu": "0",
        "dagster/max_retries": "2",
        "dagster/max_runtime": str(72 * 3600),
        "dagster/retry_strategy": "FROM_FAILURE",
    }


def test_with_the_kubernetes_launcher_training_pods_ask_for_their_gpu_and_node():
    settings = Settings(
        k8s_run_launcher=True, k8s_gpu_limit=2, k8s_gpu_node_selector="pool=a100,zone=b"
    )
    config = json.loads(training_run_tags(settings)["dagster-k8s/config"])
    assert config == {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": "2"}}},
        "pod_spec_config": {
            "node_selector": {"pool": "a100", "zone": "b"},
            "termination_grace_period_seconds": 120,
        },
    }
