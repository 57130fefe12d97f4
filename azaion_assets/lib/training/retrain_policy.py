"""The retraining policy, apart from Dagster: when to request dataset -> model -> onnx_model.

``decide`` turns plain facts (what is running, what was formed today, how much validated data
arrived since the last dataset) into a request or a reason not to, worded for the operator who
reads it in the sensor's tick history. The facts are gathered by ``retraining_sensor``.

``training_run_tags`` are the run tags every training run carries, whoever launches it:
``azaion/gpu`` is what the run queue limits to one run per value (one training per GPU), and
``dagster-k8s/config`` is read by the Kubernetes run launcher (it reads run tags, not op tags)
to give the pod its GPU and node; other launchers ignore it.
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


def training_run_tags(settings: Settings) -> dict[str, str]:
    k8s = {
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
    return {
        STAGE_TAG: TRAIN_STAGE,
        GPU_TAG: settings.training_device,
        "dagster/max_retries": str(settings.training_max_retries),
        # Run monitoring cancels a run past this; its retry resumes from the checkpoint.
        "dagster/max_runtime": str(int(settings.training_max_runtime_hours * 3600)),
        # Only the failed step re-runs, and the model step resumes from its checkpoint.
        "dagster/retry_strategy": "FROM_FAILURE",
        "dagster-k8s/config": json.dumps(k8s, sort_keys=True),
    }


@dataclass(frozen=True)
class Facts:
    today: str  # the daily partition a request would target
    active_training: str | None  # "run <id> is QUEUED", or None
    dataset_today: str | None  # "formed at 09:14 UTC by run <id>", or None
    requested_today: str | None  # "run <id> ended FAILURE": today's automatic run, or None
    last_dataset: str | None  # partition of the newest dataset, or None
    new_validated: int  # validated annotations applied since the newest dataset
    new_partitions: int  # annotation partitions materialised since the newest dataset


@dataclass(frozen=True)
class Decision:
    request: bool
    reason: str


def decide(facts: Facts, min_new_validated: int) -> Decision:
    since = f"since dataset {facts.last_dataset}" if facts.last_dataset else "with no dataset yet"
    progress = (
        f"{plural(facts.new_validated, 'new validated annotation')} in "
        f"{plural(facts.new_partitions, 'annotation partition')} {since} "
        f"(threshold {min_new_validated})"
    )
    if facts.active_training is not None:
        return Decision(False, f"a training is in progress ({facts.active_training}); {progress}")
    if facts.dataset_today is not None:
        return Decision(
            False,
            f"today's dataset {facts.today} was already {facts.dataset_today}; at most one per "
            f"day (an operator can still launch retraining_job); {progress}",
        )
    if facts.requested_today is not None:
        return Decision(
            False,
            f"today's automatic retraining was already requested ({facts.requested_today}); "
            f"re-execute it or launch retraining_job from the UI; {progress}",
        )
    if facts.new_validated < min_new_validated:
        return Decision(False, f"not enough new data: {progress}")
    return Decision(True, f"retraining {facts.today}: {progress}")
