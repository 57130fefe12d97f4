"""End to end on a real Dagster instance: dataset -> model -> onnx_model, offline.

The graph is materialised once per module on a SQLite-backed instance, with outbound network
blocked for the whole run; the tests then read what the run left on disk and in the instance.
"""

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from dagster import AssetKey, DagsterInstance, materialize
from onnx import numpy_helper

from azaion_assets import onnx_model as onnx_module
from azaion_assets.annotations import annotations
from azaion_assets.core.datatree import DataTree
from azaion_assets.core.labels import parse_label
from azaion_assets.core.settings import load_settings
from azaion_assets.core.synthetic import write_samples
from azaion_assets.dataset import dataset, dataset_labels_valid, dataset_splits_non_empty
from azaion_assets.model import model
from azaion_assets.onnx_model import onnx_model
from azaion_assets.resources import AzaionSettingsResource
from azaion_assets_tests.conftest import TINY_PROFILE, clear_config_env, guard_network

PARTITION = "2026-11-24"
GRAPH = [annotations, dataset, dataset_splits_non_empty, dataset_labels_valid, model, onnx_model]
# annotations comes from the stream (see test_annotations); here data/ is written directly.
SELECTION = [dataset, model, onnx_model]
RESOURCES = {"settings": AzaionSettingsResource()}

pytestmark = pytest.mark.slow


class Pipeline:
    def __init__(self, root: Path, instance: DagsterInstance, result, attempts: list[str]):
        self.root, self.instance, self.result, self.attempts = root, instance, result, attempts
        self.tree = DataTree.from_settings(load_settings())

    def metadata(self, key: str) -> dict:
        event = self.instance.get_latest_materialization_event(AssetKey(key))
        assert event is not None and event.asset_materialization is not None
        return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}

    def checks(self) -> dict[str, bool]:
        return {e.check_name: e.passed for e in self.result.get_asset_check_evaluations()}


def _configure(monkeypatch: pytest.MonkeyPatch, root: Path, runtime_dir: Path) -> None:
    clear_config_env(monkeypatch)
    for key, value in {
        **TINY_PROFILE,
        "AZAION_ROOT_DIR": str(root),
        "AZAION_RUNTIME_DIR": str(runtime_dir),
    }.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, runtime_dir: Path):
    base = tmp_path_factory.mktemp("pipeline")
    with pytest.MonkeyPatch.context() as mp:
        _configure(mp, base / "azaion", runtime_dir)
        tree = DataTree.from_settings(load_settings()).ensure()
        write_samples(tree.data, 48, seed=7)
        (tree.data.labels / "broken.txt").write_text("3 0.5 0.5 0.4\n")
        (tree.data.images / "broken.jpg").write_bytes(b"not really")
        (base / "dagster").mkdir()
        with DagsterInstance.from_config(str(base / "dagster")) as instance:
            attempts = guard_network(mp)
            result = materialize(
                GRAPH,
                instance=instance,
                partition_key=PARTITION,
                resources=RESOURCES,
                selection=SELECTION,
                raise_on_error=False,
            )
            yield Pipeline(base / "azaion", instance, result, attempts)


@pytest.fixture
def configured(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, runtime_dir: Path) -> Pipeline:
    _configure(monkeypatch, pipeline.root, runtime_dir)
    return pipeline


def test_the_graph_materialises_offline(pipeline):
    assert pipeline.result.success
    assert pipeline.attempts == [], "the pipeline tried to reach the network"
    assert pipeline.instance.get_run_by_id(pipeline.result.run_id) is not None  # persisted


def test_dataset_files_and_metadata(pipeline):
    tree = pipeline.tree
    folder = tree.dataset_dir(PARTITION)
    labels = [
        p for split in ("train", "valid", "test") for p in (folder / split / "labels").glob("*.txt")
    ]
    assert len(labels) == 48
    for label in labels:
        parse_label(label.read_text())
    meta = pipeline.metadata("dataset")
    assert meta["images"] == 48 and meta["corrupted"] == 1
    assert meta["images_train"] + meta["images_valid"] + meta["images_test"] == 48
    assert meta["images_valid"] > 0 and meta["images_test"] > 0
    table = meta["boxes_by_class"]
    assert {r.data["class"] for r in table.records} <= {
        "ArmorVehicle",
        "Truck",
        "MilitaryMan",
        "ArmorVehicle(Wint)",
    }
    assert (tree.corrupted.labels / "broken.txt").exists()
    assert len(meta["source_snapshot"]) == 32


def test_model_files_metadata_and_epoch_logs(pipeline):
    tree = pipeline.tree
    best = tree.model_dir(PARTITION) / "weights" / "best.pt"
    assert best.is_file()
    assert tree.champion.read_bytes() == best.read_bytes()
    meta = pipeline.metadata("model")
    for key in ("mAP50", "mAP50-95", "precision", "recall", "wall_time_s"):
        assert 0.0 <= meta[key] <= (1.0 if key != "wall_time_s" else 3600)
    assert meta["epochs"] == 2 and meta["device"] == "cpu" and meta["seed"] == 0
    assert (
        meta["hyperparameters"]["imgsz"] == 96
        and meta["hyperparameters"]["model"] == "yolo26n.yaml"
    )
    assert set(meta["versions"]) >= {"torch", "ultralytics", "python"}
    assert meta["dataset_partition"] == PARTITION
    assert meta["dataset_data_version"] == pipeline.metadata("dataset")["source_snapshot"]
    assert len(meta["ap_by_class"].records) >= 1
    # The metrics must describe the head we ship: validation ran on the NMS-free head.
    import torch

    assert torch.load(best, weights_only=False)["train_args"]["nms"] is False
    logs = [e.message for e in pipeline.instance.all_logs(pipeline.result.run_id)]
    assert any("epoch 1/2" in m and "mAP50" in m and "box_loss" in m for m in logs)
    assert any("epoch 2/2" in m for m in logs)
    assert not any("epoch 3/2" in m for m in logs)


def test_onnx_export_metadata_and_parity(pipeline):
    meta = pipeline.metadata("onnx_model")
    assert meta["outputs"] == {"output0": [1, 300, 6]}
    assert meta["inputs"] == {"images": [1, 3, 128, 128]}
    assert meta["opset"] >= 17 and meta["size_bytes"] > 1_000_000
    parity = meta["parity"]
    assert parity["passed"] and parity["images"] == 4
    assert parity["max_sorted_score_diff"] <= 0.02
    assert meta["onnx_latency_ms"] > 0 and meta["torch_latency_ms"] > 0
    assert pipeline.checks() == {
        "dataset_splits_non_empty": True,
        "dataset_labels_valid": True,
        "onnx_parity": True,
    }
    assert pipeline.tree.champion_onnx.is_file()


def _tamper(path: Path, out: Path) -> Path:
    """Scale every convolution kernel by 1.5: the graph still runs, but computes something else."""
    graph = onnx.load(str(path))
    for tensor in graph.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.dtype == np.float32 and array.ndim == 4:
            tensor.CopyFrom(numpy_helper.from_array(array * np.float32(1.5), tensor.name))
    onnx.save(graph, str(out))
    return out


def test_a_diverging_export_fails_the_blocking_check_and_is_not_published(configured, monkeypatch):
    tree = configured.tree
    published = tree.champion_onnx.read_bytes()
    real_export = onnx_module.export_onnx

    def export_then_tamper(weights, imgsz):
        good = real_export(weights, imgsz)
        return _tamper(good, good.with_name("tampered.onnx"))

    monkeypatch.setattr(onnx_module, "export_onnx", export_then_tamper)
    result = materialize(
        [onnx_model],
        instance=configured.instance,
        partition_key=PARTITION,
        resources=RESOURCES,
        raise_on_error=False,
    )
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["onnx_parity"].passed is False
    assert not result.success  # blocking
    assert tree.champion_onnx.read_bytes() == published


def test_a_dataset_with_an_empty_split_blocks_training(tmp_path, monkeypatch, runtime_dir):
    _configure(monkeypatch, tmp_path / "azaion", runtime_dir)
    tree = DataTree.from_settings(load_settings()).ensure()
    write_samples(tree.data, 1, seed=1)
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [annotations, dataset, dataset_splits_non_empty, dataset_labels_valid, model],
            instance=instance,
            partition_key=PARTITION,
            resources=RESOURCES,
            selection=[dataset, model],
            raise_on_error=False,
        )
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks["dataset_splits_non_empty"] is False
        assert not result.success
        assert instance.get_latest_materialization_event(AssetKey("model")) is None
    assert not tree.model_dir(PARTITION).exists()


def test_a_missing_base_model_fails_with_the_path(tmp_path, monkeypatch, runtime_dir):
    _configure(monkeypatch, tmp_path / "azaion", runtime_dir)
    monkeypatch.setenv("TRAINING_MODEL", "yolo26m.pt")
    tree = DataTree.from_settings(load_settings()).ensure()
    write_samples(tree.data, 12, seed=2)
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [annotations, dataset, model],
            instance=instance,
            partition_key=PARTITION,
            resources=RESOURCES,
            selection=[dataset, model],
            raise_on_error=False,
        )
        failures = [e for e in result.all_events if e.is_step_failure]
        assert len(failures) == 1
        message = failures[0].step_failure_data.error.to_string()  # type: ignore[union-attr]
        assert str(tree.models / "yolo26m.pt") in message
    shutil.rmtree(tmp_path / "azaion")
