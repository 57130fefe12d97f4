"""The retraining policy's words and run tags, without Dagster: what the operator reads under
the sensor's ticks, and the tags a training run shows on its page."""

import json

import pytest

from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.training.retrain_policy import (
    Facts,
    Rules,
    Watch,
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
        "new_segments": 2,
    }
    return Facts(**{**values, **changes})


def rules(min_new_validated: int, margin: float = 0.05, min_images: int = 50) -> Rules:
    return Rules(min_new_validated, margin, min_images)


def test_plural_counts_one_and_many():
    assert plural(0, "annotation") == "0 annotations"
    assert plural(1, "annotation") == "1 annotation"
    assert plural(2, "annotation") == "2 annotations"


def test_below_both_rules_the_reason_names_each_rule_with_its_figures():
    decision = decide(facts(), rules(50))
    assert not decision.request
    assert decision.reason == (
        "neither rule: count 12 of 50 (2 ingest segments since dataset 2026-11-19); "
        "degradation: no champion yet"
    )
    watch = Watch("2026-11-19", new_map50_95=0.43, test_map50_95=0.45, images=80)
    decision = decide(facts(champion="2026-11-19", watch=watch), rules(50))
    assert not decision.request
    assert decision.reason == (
        "neither rule: count 12 of 50 (2 ingest segments since dataset 2026-11-19); degradation: "
        "champion 2026-11-19 mAP50-95 0.430 on 80 new images vs 0.450 test, "
        "0.020 behind <= margin 0.05"
    )


def test_singular_counts_read_as_singular():
    reason = decide(facts(new_validated=0, new_segments=1, last_dataset=None), rules(1)).reason
    assert reason == (
        "neither rule: count 0 of 1 (1 ingest segment, no dataset yet); "
        "degradation: no champion yet"
    )
    busy = decide(
        facts(active_training="training in progress: run daa00b11 is STARTED", new_validated=1),
        rules(5),
    ).reason
    assert (
        busy == "training in progress: run daa00b11 is STARTED; 1 new validated annotation waiting"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {
                "active_training": "training in progress: run daa00b11 is STARTED",
                "new_validated": 500,
            },
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
    decision = decide(facts(**change), rules(1))
    assert not decision.request and decision.reason == reason
    assert len(decision.reason) <= 120


def test_enough_new_data_requests_and_says_why():
    decision = decide(facts(new_validated=105, new_segments=3), rules(100))
    assert decision.request and decision.rule == "count"
    assert decision.reason == (
        "count: 105 new validated annotations in 3 ingest segments since dataset 2026-11-19 "
        "(RETRAIN_MIN_NEW_VALIDATED 100): retraining"
    )


def test_a_champion_falling_behind_on_new_data_requests_a_retraining():
    watch = Watch("2026-11-19", new_map50_95=0.31, test_map50_95=0.45, images=80)
    decision = decide(facts(champion="2026-11-19", watch=watch), rules(100))
    assert decision.request and decision.rule == "degradation"
    assert decision.reason == (
        "degradation: champion 2026-11-19 mAP50-95 0.310 on 80 new images vs 0.450 test, "
        "0.140 behind > margin 0.05: retraining"
    )


@pytest.mark.parametrize(
    ("watch", "says"),
    [
        (None, "no score of champion 2026-11-19 on new data yet"),
        (
            Watch("2026-11-19", 0.10, 0.45, images=49),
            "champion 2026-11-19 mAP50-95 0.100 on 49 new images vs 0.450 test; "
            "fewer than RETRAIN_DEGRADATION_MIN_IMAGES (50)",
        ),
        (
            Watch("2026-11-19", 0.10, 0.45, 80, stale="scored before the newest dataset formed"),
            "no current score (scored before the newest dataset formed)",
        ),
        (Watch("2026-11-19", 0.40, 0.45, images=80), "0.050 behind <= margin 0.05"),
    ],
    ids=["no-score", "too-few-images", "stale", "at-the-margin"],
)
def test_degradation_needs_a_current_score_enough_images_and_a_gap_past_the_margin(watch, says):
    decision = decide(facts(champion="2026-11-19", watch=watch), rules(100))
    assert not decision.request
    assert decision.reason.endswith(says), decision.reason


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
