import subprocess
import sys
from datetime import UTC, datetime

from dagster import AssetKey, DynamicPartitionsDefinition

from azaion_assets.definitions import defs as load_defs
from azaion_assets.partitions import daily_partitions

defs = load_defs()


def test_definitions_load_with_the_final_asset_keys_and_lineage():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {"annotations", "dataset", "model", "onnx_model"}
    parents = {
        k: {p.to_user_string() for p in graph.get(AssetKey(k)).parent_keys}
        for k in ("dataset", "model", "onnx_model")
    }
    assert parents == {"dataset": {"annotations"}, "model": {"dataset"}, "onnx_model": {"model"}}


def test_annotations_is_a_declared_asset_partitioned_by_stream_batches():
    # Not merely an implicit stub for a dependency: the UI shows only declared assets.
    node = defs.resolve_asset_graph().get(AssetKey("annotations"))
    assert not node.is_virtual
    assert node.group_name == "annotations"
    assert isinstance(node.partitions_def, DynamicPartitionsDefinition)
    assert node.partitions_def.name == "annotation_batches"
    for key in ("dataset", "model", "onnx_model"):
        assert defs.resolve_asset_graph().get(AssetKey(key)).partitions_def == daily_partitions


def test_checks_are_defined_and_blocking():
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == {
        ("dataset", "dataset_splits_non_empty"),
        ("dataset", "dataset_labels_valid"),
        ("onnx_model", "onnx_parity"),
    }
    for key in graph.asset_check_keys:
        assert graph.get_check_spec(key).blocking


def test_todays_partition_exists():
    today = datetime.now(UTC).date().isoformat()
    assert today in daily_partitions.get_partition_keys()


def test_loading_the_code_location_imports_no_heavy_library():
    code = (
        "import sys, azaion_assets.definitions; "
        "heavy = ('torch', 'ultralytics', 'onnxruntime', 'cv2'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
