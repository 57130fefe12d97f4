"""``retraining_job``: dataset -> model -> onnx_model -> champion for one day, as one training run.

Everything that launches a training, the retraining sensor and an operator in the UI alike,
goes through this job, so every training run carries the same run tags (``training_run_tags``):
the GPU tag the run queue limits to one run per GPU, run retries that resume from the last
checkpoint, and, where runs are Kubernetes Jobs (``K8S_RUN_LAUNCHER``), the pod config. The tags
come from settings, so the job is built when the code location loads.
"""

from dagster import AssetSelection, define_asset_job, multiprocess_executor

from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.training.retrain_policy import RETRAINING_JOB, training_run_tags

__all__ = ["RETRAINING_JOB", "TRAINING_ASSETS", "build_retraining_job"]
# The blocking checks (dataset's, the ONNX parity) run with the training; the health checks on
# model and champion are health_sensor's.
TRAINING_ASSETS = AssetSelection.assets(
    "dataset", "model", "onnx_model", "champion"
).without_checks() | AssetSelection.checks_for_assets("dataset", "onnx_model")


# Each step still runs in a process of its own (a killed training fails its step, and the run's
# retry resumes it), but forked from a server that imported the code location once: a step
# starts in a fraction of a second instead of about 3.5 s, seven times a run (bench/README.md).
STEPS_FORKED = multiprocess_executor.configured({"start_method": {"forkserver": {}}})


def build_retraining_job(settings: Settings):
    return define_asset_job(
        RETRAINING_JOB,
        selection=TRAINING_ASSETS,
        executor_def=STEPS_FORKED,
        tags=training_run_tags(settings),
        description=(
            "Form the day's dataset, train a model on it, export it to ONNX and promote it if "
            "it beats the champion; one training per GPU (run tag azaion/gpu)"
        ),
    )
