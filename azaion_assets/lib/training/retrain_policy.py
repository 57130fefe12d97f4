"""The retraining policy, apart from Dagster: when to request dataset -> model -> onnx_model.

``decide`` turns plain facts (what is running, what was formed today, how much validated data
arrived since the last dataset) into a request or a reason not to, worded for the operator who
reads it in the sensor's tick history. The facts are gathered by ``retraining_sensor``.

``training_run_tags`` are the run tags every training run carries, whoever launches it:
``azaion/gpu`` is what the run queue limits to one run per value (one training per GPU), and,
with ``K8S_RUN_LAUNCHER=true`` only, ``dagster-k8s/config``, which the Kubernetes run launcher
reads (from run tags, not op tags) to give the pod its GPU and node. Other launchers would ignore
it, but it would still sit on every run in the UI, a long JSON that means nothing there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from azaion_assets.lib.config.fields import node_selector
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.text import plural

STAGE_TAG = "azaion/stage"
GPU_TAG = "azaion/gpu"
TRAIN_STAGE = "train"
TRIGGER_TAG = "azaion/trigger"
STOP_GRACE_SECONDS = 120
K8S_CONFIG_TAG = "dagster-k8s/config"
RETRAINING_JOB = "retraining_job"


def training_run_tags(settings: Settings) -> dict[str, str]:
    tags = {
        STAGE_TAG: TRAIN_STAGE,
        GPU_TAG: settings.training_device,
        "dagster/max_retries": str(settings.training_max_retries),
        # Run monitoring cancels a run past this; its retry resumes from the checkpoint.
        "dagster/max_runtime": str(int(settings.training_max_runtime_hours * 3600)),
        # Only the failed step re-runs, and the model step resumes from its checkpoint.
        "dagster/retry_strategy": "FROM_FAILURE",
    }
    if settings.k8s_run_launcher:
        tags[K8S_CONFIG_TAG] = json.dumps(_k8s_config(settings), sort_keys=True)
    return tags


def _k8s_config(settings: Settings) -> dict:
    return {
        "container_config": {
            "resources": {"limits": {"nvidia.com/gpu": str(settings.k8s_gpu_limit)}}
        },
        "pod_spec_config": {
            "node_selector": node_selector(settings.k8s_gpu_node_selector),
            # Terminating a run deletes its pod: SIGTERM, then SIGKILL after this grace period,
            # which training needs to finish its batch and write a resumable checkpoint.
            "termination_grace_period_seconds": STOP_GRACE_SECONDS,
        },
    }


@dataclass(frozen=True)
class Watch:
    """The champion's latest score on new data (``champion_monitor``)."""

    champion: str
    new_map50_95: float
    test_map50_95: float
    images: int
    stale: str | None = None  # why it cannot decide: another champion's, or older than a dataset


@dataclass(frozen=True)
class Facts:
    today: str  # the daily partition a request would target
    active_training: str | None  # "training in progress: run <id> is QUEUED", or None
    dataset_today: str | None  # "formed at 09:14 UTC by run <id>", or None
    requested_today: str | None  # "run <id> ended FAILURE": today's automatic run, or None
    last_dataset: str | None  # partition of the newest dataset, or None
    new_validated: int  # distinct annotations validated and changed since the newest dataset
    new_segments: int  # annotations materialisations (ingest segments) since the newest dataset
    champion: str | None = None  # the partition the champion holds, or None
    watch: Watch | None = None  # the champion's latest score on new data, or None


@dataclass(frozen=True)
class Rules:
    min_new_validated: int  # RETRAIN_MIN_NEW_VALIDATED
    margin: float = 0.05  # RETRAIN_DEGRADATION_MARGIN
    min_images: int = 50  # RETRAIN_DEGRADATION_MIN_IMAGES


@dataclass(frozen=True)
class Decision:
    request: bool
    reason: str
    rule: str = ""  # "count" or "degradation" when it requests


def decide(facts: Facts, rules: Rules) -> Decision:
    """Request or not, and why in one line that names the rule and its figures: the count of
    new validated annotations, or the champion's degradation on them."""
    new = plural(facts.new_validated, "new validated annotation")
    if facts.active_training is not None:
        return Decision(False, f"{facts.active_training}; {new} waiting")
    if facts.dataset_today is not None:
        return Decision(
            False,
            f"dataset {facts.today} already {facts.dataset_today}: one a day; "
            f"launch {RETRAINING_JOB} to force another",
        )
    if facts.requested_today is not None:
        return Decision(
            False,
            f"today's retraining {facts.requested_today}: one a day; "
            f"re-execute it or launch {RETRAINING_JOB}",
        )
    partitions = plural(facts.new_segments, "ingest segment")
    where = (
        f"{partitions} since dataset {facts.last_dataset}"
        if facts.last_dataset
        else f"{partitions}, no dataset yet"
    )
    if facts.new_validated >= rules.min_new_validated:
        return Decision(
            True,
            f"count: {new} in {where} (RETRAIN_MIN_NEW_VALIDATED {rules.min_new_validated}): "
            "retraining",
            "count",
        )
    degraded, figures = degradation(facts, rules)
    if degraded:
        return Decision(True, f"degradation: {figures}: retraining", "degradation")
    return Decision(
        False,
        f"neither rule: count {facts.new_validated} of {rules.min_new_validated} ({where}); "
        f"degradation: {figures}",
    )


def degradation(facts: Facts, rules: Rules) -> tuple[bool, str]:
    """Whether the champion's latest score on new data calls for a retraining, and its figures."""
    watch = facts.watch
    if facts.champion is None:
        return False, "no champion yet"
    if watch is None:
        return False, f"no score of champion {facts.champion} on new data yet"
    if watch.stale is not None:
        return False, f"no current score ({watch.stale})"
    gap = round(watch.test_map50_95 - watch.new_map50_95, 4)
    figures = (
        f"champion {watch.champion} mAP50-95 {watch.new_map50_95:.3f} on "
        f"{plural(watch.images, 'new image')} vs {watch.test_map50_95:.3f} test"
    )
    if watch.images < rules.min_images:
        return False, f"{figures}; fewer than RETRAIN_DEGRADATION_MIN_IMAGES ({rules.min_images})"
    if gap > rules.margin:
        return True, f"{figures}, {gap:.3f} behind > margin {rules.margin}"
    return False, f"{figures}, {gap:.3f} behind <= margin {rules.margin}"
