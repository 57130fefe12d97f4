import json
import re
import subprocess
import sys
from datetime import UTC, datetime

from dagster import AssetKey, DynamicPartitionsDefinition

from azaion_assets.definitions import defs as load_defs

defs = load_defs()
DATED = ("daily_arrivals", "dataset", "model", "onnx_model", "model_release")
daily_partitions = defs.resolve_assets_def("dataset").partitions_def


def test_definitions_load_with_the_final_asset_keys_and_lineage():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {"annotations", *DATED, "champion", "champion_monitor"}
    parents = {
        k: {p.to_user_string() for p in graph.get(AssetKey(k)).parent_keys}
        for k in (*DATED, "champion", "champion_monitor")
    }
    assert parents == {
        "daily_arrivals": {"annotations"},
        "dataset": {"annotations"},
        "model": {"dataset"},
        "onnx_model": {"model"},
        "champion": {"onnx_model"},
        "champion_monitor": {"champion"},
        "model_release": {"onnx_model", "champion"},
    }
    champion = graph.get(AssetKey("champion"))
    assert champion.is_executable and not champion.is_partitioned  # a real, materialised asset


def test_annotations_is_a_declared_asset_partitioned_by_stream_batches():
    # Not merely an implicit stub for a dependency: the UI shows only declared assets.
    node = defs.resolve_asset_graph().get(AssetKey("annotations"))
    assert not node.is_virtual
    assert node.group_name == "annotations"
    assert isinstance(node.partitions_def, DynamicPartitionsDefinition)
    assert node.partitions_def.name == "annotation_batches"
    for key in DATED:
        assert defs.resolve_asset_graph().get(AssetKey(key)).partitions_def == daily_partitions


def test_checks_are_defined_and_blocking():
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == {
        ("dataset", "dataset_splits_non_empty"),
        ("dataset", "dataset_labels_valid"),
        ("dataset", "dataset_no_video_across_train_and_test"),
        ("onnx_model", "onnx_parity"),
        ("annotations", "every_partition_landed"),
        ("annotations", "annotations_arriving"),
        ("champion", "champion_released"),
        ("model", "training_recent"),
    }
    alarms = {"every_partition_landed", "annotations_arriving", "champion_released"}
    alarms.add("training_recent")
    for key in graph.asset_check_keys:  # the data checks gate what is downstream
        assert graph.get_check_spec(key).blocking == (key.name not in alarms)


def test_todays_partition_exists():
    today = datetime.now(UTC).date().isoformat()
    assert daily_partitions is not None and today in daily_partitions.get_partition_keys()


def test_loading_the_code_location_imports_no_heavy_library():
    code = (
        "import sys, azaion_assets.definitions; "
        "heavy = ('torch', 'ultralytics', 'onnxruntime', 'cv2'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_training_run_carries_the_gpu_and_retry_tags_and_no_kubernetes_tag():
    job = defs.resolve_job_def("retraining_job")
    assert {n.to_user_string() for n in job.asset_layer.selected_asset_keys} == {
        "dataset",
        "model",
        "onnx_model",
        "champion",
    }
    checks = {k.name for k in job.asset_layer.asset_graph.asset_check_keys}
    assert checks == {  # the blocking checks; the health checks are health_sensor's
        "dataset_splits_non_empty",
        "dataset_labels_valid",
        "dataset_no_video_across_train_and_test",
        "onnx_parity",
    }
    assert job.partitions_def == daily_partitions
    tags = job.tags
    assert tags["azaion/stage"] == "train" and tags["azaion/gpu"] == "auto"
    assert tags["dagster/max_retries"] == "2" and tags["dagster/retry_strategy"] == "FROM_FAILURE"
    assert tags["dagster/max_runtime"] == str(72 * 3600)
    # Host processes and Docker (K8S_RUN_LAUNCHER unset): no pod config on every run's page.
    assert not [tag for tag in tags if tag.startswith("dagster-k8s")]


def test_training_run_tags_follow_the_settings(monkeypatch):
    monkeypatch.setenv("TRAINING_DEVICE", "1")
    monkeypatch.setenv("TRAINING_MAX_RETRIES", "5")
    monkeypatch.setenv("K8S_RUN_LAUNCHER", "true")
    monkeypatch.setenv("K8S_GPU_LIMIT", "2")
    monkeypatch.setenv("K8S_GPU_NODE_SELECTOR", "pool=a100,zone=b")
    tags = load_defs().resolve_job_def("retraining_job").tags
    assert tags["azaion/gpu"] == "1" and tags["dagster/max_retries"] == "5"
    k8s = json.loads(tags["dagster-k8s/config"])
    assert k8s["container_config"]["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    assert k8s["pod_spec_config"]["node_selector"] == {"pool": "a100", "zone": "b"}
    assert k8s["pod_spec_config"]["termination_grace_period_seconds"] == 120


def test_an_invalid_launcher_setting_loads_the_location_without_the_kubernetes_tag(monkeypatch):
    monkeypatch.setenv("K8S_RUN_LAUNCHER", "kubernetes")  # not a boolean: the default, false
    tags = load_defs().resolve_job_def("retraining_job").tags
    assert "dagster-k8s/config" not in tags and tags["azaion/stage"] == "train"


def test_the_model_step_takes_the_gpu_pool_and_the_sensors_run_by_default():
    assert defs.resolve_assets_def("model").op.pool == "gpu"
    names = ("annotation_stream_sensor", "retraining_sensor", "model_release_sensor")
    for name in (*names, "health_sensor", "champion_monitor_sensor"):
        sensor = defs.resolve_sensor_def(name)
        assert sensor.default_status.value == "RUNNING"
    assert defs.resolve_sensor_def("retraining_sensor").job_name == "retraining_job"
    # Ingest runs belong to the named job, never to "__anonymous_asset_job_<sensor>".
    assert defs.resolve_sensor_def("annotation_stream_sensor").job_name == "ingest_job"
    assert defs.resolve_sensor_def("model_release_sensor").job_name == "model_release_job"
    assert defs.resolve_job_def("promote_model") is not None


def test_sensor_descriptions_are_plain_words_for_the_operator():
    """The UI shows the description: no markup, no function or job names, one or two
    sentences that say what the sensor does and when it requests a run."""
    names = ("annotation_stream_sensor", "retraining_sensor", "model_release_sensor")
    for name in (*names, "health_sensor", "champion_monitor_sensor"):
        description = defs.resolve_sensor_def(name).description or ""
        assert 40 < len(description) < 260, (name, description)
        assert "`" not in description and "\n" not in description, (name, description)
        assert not re.search(r"\b[a-z]+_[a-z_]+\b", description), (name, description)
        assert description.count(". ") <= 1 and description.endswith("."), (name, description)


def test_the_release_job_ships_only_the_release_with_its_retry_policy():
    job = defs.resolve_job_def("model_release_job")
    assert job.tags["azaion/stage"] == "release"
    assert [str(k.to_user_string()) for k in job.asset_layer.executable_asset_keys] == [
        "model_release"
    ]
    policy = defs.resolve_assets_def("model_release").op.retry_policy
    assert policy is not None and policy.max_retries == 3 and policy.backoff is not None
