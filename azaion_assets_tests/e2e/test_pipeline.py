"""End to end on a real Dagster instance: dataset -> model -> onnx_model, offline.

The graph is materialised once per module on a SQLite-backed instance, with outbound network
blocked for the whole run; the tests then read what the run left on disk and in the instance.
"""

import base64
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
from dagster import AssetKey, DagsterInstance, materialize
from onnx import numpy_helper

from azaion_assets.cli.main import main
from azaion_assets.defs.annotations.annotations import annotations
from azaion_assets.defs.release import onnx_model as onnx_module
from azaion_assets.defs.resources import AzaionApiResource, AzaionSettingsResource
from azaion_assets.dev.synthetic import samples, write_samples
from azaion_assets.lib.champion.card import card_json, read_card
from azaion_assets.lib.champion.files import held_partition, read_record, record_path
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.sources import load_settings
from azaion_assets.lib.evaluation import export as export_module
from azaion_assets.lib.evaluation.champion_gate import evaluate, evaluate_frames, read_evaluation
from azaion_assets.lib.evaluation.export import read_export_record
from azaion_assets.lib.evaluation.frame_errors import differ_most, rule, worst
from azaion_assets.lib.evaluation.parity import check_parity, row_agreement
from azaion_assets.lib.fsio.digest import sha256
from azaion_assets.lib.labels.classes import load_classes, slot_names
from azaion_assets.lib.labels.yolo_format import parse_label
from azaion_assets_tests.conftest import TINY_PROFILE, clear_config_env, guard_network
from azaion_assets_tests.dated import (
    champion,
    dataset,
    dataset_labels_valid,
    dataset_no_video_across_train_and_test,
    dataset_splits_non_empty,
    model,
    model_release,
    onnx_model,
)

PARTITION = "2026-11-22"
NEWER = "2026-11-23"  # a second, newer day: its model challenges the first one
GRAPH = [
    annotations,
    dataset,
    dataset_splits_non_empty,
    dataset_labels_valid,
    dataset_no_video_across_train_and_test,
    model,
    onnx_model,
    champion,
]
# annotations comes from the stream (see test_annotations); here data/ is written directly.
SELECTION = [dataset, model, onnx_model, champion]
RESOURCES = {"azaion_settings": AzaionSettingsResource()}
RELEASE_RESOURCES = {
    **RESOURCES,
    "azaion_api": AzaionApiResource(azaion_settings=RESOURCES["azaion_settings"]),
}

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
    _assert_pictures(meta["pictures"], folder, ["boxes_by_class.png"])
    assert {p.name for p in (folder / "report").iterdir()} == {
        "boxes_by_class.png", "sheet_train.jpg", "sheet_valid.jpg", "sheet_test.jpg"
    }  # fmt: skip


def test_model_files_metadata_and_epoch_logs(pipeline):
    tree = pipeline.tree
    best = tree.model_dir(PARTITION) / "weights" / "best.pt"
    assert best.is_file()
    assert tree.champion.read_bytes() == best.read_bytes()
    meta = pipeline.metadata("model")
    for key in ("mAP50", "mAP50-95", "precision", "recall"):  # PyTorch: diagnostics only
        assert 0.0 <= meta[f"diagnostic_val_{key}"] <= 1.0
    run = meta["training_run"]
    assert 0.0 < run["wall_time_s"] <= 3600
    assert "verdict" not in meta and "test_mAP50-95" not in meta  # the gate is onnx_model's
    assert run["epochs"] == 2 and meta["device"] == "cpu" and run["seed"] == 0
    plotted = {k for k, v in meta.items() if type(v) in (int, float)}
    assert plotted == {f"diagnostic_val_{m}" for m in ("mAP50", "mAP50-95", "precision", "recall")}
    assert (
        meta["hyperparameters"]["imgsz"] == 96
        and meta["hyperparameters"]["model"] == "yolo26n.yaml"
    )
    # A CPU run: no AMP (TRAINING_AMP is true by default) and no CUDA versions.
    assert meta["amp"] == "not used on cpu (AMP is for CUDA)"
    assert meta["hyperparameters"]["amp"] is False
    assert set(meta["versions"]) == {"torch", "ultralytics", "python"}
    assert meta["dataset_partition"] == PARTITION
    training = json.loads((tree.model_dir(PARTITION) / "training.json").read_text())
    assert training == {"imgsz": 96, "imgsz_from": "settings"}  # what onnx_model reads
    assert meta["dataset_data_version"] == pipeline.metadata("dataset")["source_snapshot"]
    assert len(meta["diagnostic_val_ap_by_class"].records) >= 1
    # The training curves: one PNG on the page, the same bytes in report/ beside the model.
    (uri,) = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", meta["training_curves"])
    chart = tree.model_dir(PARTITION) / "report" / "training_curves.png"
    assert base64.b64decode(uri) == chart.read_bytes()
    drawn = cv2.imdecode(np.frombuffer(chart.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert drawn is not None and drawn.shape[1] > 0
    # The metrics must describe the head we ship: validation ran on the NMS-free head.
    import torch

    assert torch.load(best, weights_only=False)["train_args"]["nms"] is False
    logs = [e.message for e in pipeline.instance.all_logs(pipeline.result.run_id)]
    assert any("epoch 1/2" in m and "mAP50" in m and "box_loss" in m for m in logs)
    assert any("epoch 2/2" in m for m in logs)
    assert not any("epoch 3/2" in m for m in logs)


def test_the_first_model_becomes_the_champion_with_its_test_score(pipeline):
    meta = pipeline.metadata("onnx_model")
    assert meta["verdict"] == "promote" and meta["champion_before"] == "none"
    assert meta["decision"] == "no champion yet: the first model becomes the champion"
    assert meta["test_images"] == pipeline.metadata("dataset")["images_test"]
    assert 0.0 <= meta["test_mAP50-95"] <= 1.0 and meta["gate"]["quality_floor"] == 0.0
    assert "champion_test_mAP50-95" not in meta  # nothing to compare with: no text in a plot
    assert meta["gate"]["scored_on"].startswith("the ONNX files as shipped")
    plotted = {
        k for k, v in meta.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    assert plotted == {"test_mAP50", "test_mAP50-95", "test_images"}  # trends only
    model_meta = pipeline.metadata("model")
    assert model_meta["training_start"] == "fresh"
    assert model_meta["training_run"]["resumed_after_epoch"] == 0
    champion = pipeline.metadata("champion")
    assert champion["partition"] == PARTITION and champion["promotion"] == "automatic"
    assert champion["reason"] == meta["decision"] and champion["previous_champion"] == "none"
    assert champion["test_mAP50-95"] == meta["test_mAP50-95"]
    assert champion["dataset"] == str(pipeline.tree.dataset_dir(PARTITION))
    tree = pipeline.tree
    assert champion["pt_path"] == str(tree.champion)
    assert champion["onnx_path"] == str(tree.champion_onnx)
    assert champion["pt_sha256"] == sha256(tree.champion) == meta["weights_sha256"]
    assert champion["onnx_sha256"] == sha256(tree.champion_onnx) == meta["sha256"]
    assert champion["pt_record"] == champion["onnx_record"] == f"matches the file ({PARTITION})"
    record = read_record(pipeline.tree.champion)
    assert record is not None and record["partition"] == PARTITION
    evaluation = read_evaluation(pipeline.tree.model_dir(PARTITION))
    assert evaluation is not None and evaluation["promote"] is True
    # No champion to differ from: the gallery shows the challenger's worst test frames.
    names = slot_names(load_classes(tree.classes_file))
    scored = evaluate_frames(tree.champion_onnx, tree.dataset_dir(PARTITION), names)
    assert meta["gallery"]["rule"] == rule("worst")
    assert meta["gallery"]["frames"] == [f.image.name for f in worst(scored.frames, 8)]
    _assert_pictures(
        meta["pictures"], tree.model_dir(PARTITION), ["pr_curves.png", "confusion.png"]
    )


def _assert_pictures(markdown: str, model_dir: Path, charts: list[str]) -> None:
    """Every picture on the page decodes, and the charts are the files in ``report/``."""
    uris = re.findall(r"data:image/(png|jpeg);base64,([A-Za-z0-9+/=]+)", markdown)
    assert len(uris) >= len(charts)
    for _, data in uris:
        image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[1] > 0
    for (_, data), name in zip(uris, charts, strict=False):
        assert base64.b64decode(data) == (model_dir / "report" / name).read_bytes()
    assert len(markdown.encode()) <= 1_000_000 + 2_000  # the budget, and the words around it


def test_champion_and_challenger_are_scored_on_the_same_test_images(configured):
    tree = configured.tree
    dataset_dir = tree.dataset_dir(PARTITION)
    names = slot_names(load_classes(tree.classes_file))
    exported = tree.model_dir(PARTITION) / "weights" / "best.onnx"
    champion = evaluate(tree.champion_onnx, dataset_dir, names)
    challenger = evaluate(exported, dataset_dir, names)
    assert champion == challenger  # the same file on the same split
    assert champion.images == configured.metadata("dataset")["images_test"]
    assert champion.imgsz == int(TINY_PROFILE["EXPORT_ONNX_IMGSZ"])  # the ONNX's own size


def test_onnx_export_metadata_and_parity(pipeline):
    meta = pipeline.metadata("onnx_model")
    assert meta["outputs"] == {"output0": [1, 300, 6]}
    assert meta["inputs"] == {"images": [1, 3, 128, 128]}
    export = meta["export"]
    assert export["imgsz"] == 128 and export["imgsz_from"] == "EXPORT_ONNX_IMGSZ"
    assert export["training_imgsz"] == 96
    assert export["size_mismatch"] == "exported at 128, trained at 96"
    assert export["size_bytes"] > 1_000_000
    parity = meta["parity"]
    assert parity["passed"] and parity["images"] == 4 and parity["imgsz"] == 128
    assert parity["max_sorted_score_diff"] <= 0.02
    assert parity["boxes_reference"] > 0 and parity["compared"] == export["parity_compared"]
    # The record vouches for the installed file and the weights it came from.
    folder = pipeline.tree.model_dir(PARTITION)
    record = read_export_record(folder)
    assert record is not None and record["onnx_sha256"] == meta["sha256"]
    assert meta["sha256"] == sha256(folder / "weights" / "best.onnx")
    assert record["weights_sha256"] == sha256(folder / "weights" / "best.pt")
    assert not list((folder / "weights").glob(".export-*"))  # no staging left behind
    assert export["onnx_latency_ms"] > 0 and export["torch_latency_ms"] > 0
    assert pipeline.checks() == {
        "dataset_splits_non_empty": True,
        "dataset_labels_valid": True,
        "dataset_no_video_across_train_and_test": True,
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


def test_a_worse_challenger_stays_in_its_folder_until_promoted_by_hand(configured, monkeypatch):
    tree = configured.tree
    champion_pt, champion_onnx = tree.champion.read_bytes(), tree.champion_onnx.read_bytes()
    real_evaluate = onnx_module.evaluate_frames
    scored = {}

    def champion_scores_higher(onnx_path, *args):  # the real evaluation, plus a handicap
        real = scored[Path(onnx_path)] = real_evaluate(onnx_path, *args)
        bonus = 0.5 if Path(onnx_path) == tree.champion_onnx else 0.0
        score = real.score
        better = replace(score, map50=score.map50 + bonus, map50_95=score.map50_95 + bonus)
        return replace(real, score=better)

    monkeypatch.setattr(onnx_module, "evaluate_frames", champion_scores_higher)
    monkeypatch.setenv("RETRAIN_PROMOTION_TOLERANCE", "0.01")
    result = materialize(
        GRAPH,
        instance=configured.instance,
        partition_key=NEWER,
        resources=RESOURCES,
        selection=SELECTION,
    )
    assert result.success
    meta = configured.metadata("onnx_model")
    assert meta["verdict"] == "keep as challenger"
    assert meta["decision"].startswith("kept as challenger")
    assert meta["champion_before"] == PARTITION
    assert meta["champion_test_mAP50-95"] > meta["test_mAP50-95"] + 0.49
    table = {r.data["slot"]: r.data for r in meta["ap_by_class"].records}
    assert table and all("challenger_ap50_95" in row for row in table.values())
    assert any("champion_ap50_95" in row for row in table.values())  # side by side
    # The gallery: the test frames where the two differ most, by the rule it states.
    challenger_frames, champion_frames = (
        scored[p].frames for p in (tree.model_dir(NEWER) / "weights" / "best.onnx",
                                   tree.champion_onnx)
    )  # fmt: skip
    picked = differ_most(challenger_frames, champion_frames, 8)
    assert meta["gallery"]["rule"] == rule("differ_most")
    assert meta["gallery"]["frames"] == [mine.image.name for mine, _ in picked]
    _assert_pictures(meta["pictures"], tree.model_dir(NEWER), ["pr_curves.png", "confusion.png"])
    assert tree.champion.read_bytes() == champion_pt  # the champion stays
    newest = configured.instance.get_latest_materialization_event(AssetKey("champion"))
    assert newest is not None and newest.run_id != result.run_id  # the champion did not change
    assert tree.champion_onnx.read_bytes() == champion_onnx  # the export follows the champion
    challenger = tree.model_dir(NEWER) / "weights" / "best.pt"
    assert challenger.is_file()

    config = {"partition": NEWER, "reason": "field test"}
    promoted = materialize(
        [champion],
        run_config={"ops": {"champion": {"config": config}}},
        instance=configured.instance,
        resources=RESOURCES,
    )
    assert promoted.success
    assert tree.champion.read_bytes() == challenger.read_bytes()
    assert tree.champion_onnx.read_bytes() == challenger.with_suffix(".onnx").read_bytes()
    record = read_record(tree.champion)
    assert record is not None and record["partition"] == NEWER
    assert record["promotion"] == "manual" and record["reason"] == "field test"
    onnx_record = read_record(tree.champion_onnx)  # the pair moves together
    assert onnx_record is not None and onnx_record["partition"] == NEWER
    champion_meta = configured.metadata("champion")
    assert champion_meta["partition"] == NEWER and champion_meta["promotion"] == "manual"
    assert (
        champion_meta["reason"] == "field test" and champion_meta["previous_champion"] == PARTITION
    )
    assert champion_meta["previous_test_mAP50-95"] > champion_meta["test_mAP50-95"]


def test_the_champion_records_the_live_pair_as_found_and_flags_a_record_that_does_not_vouch(
    configured,
):
    tree = configured.tree
    held = held_partition(tree.champion)
    assert materialize([champion], instance=configured.instance, resources=RESOURCES).success
    meta = configured.metadata("champion")
    assert meta["promotion"] == "recorded as found" and meta["partition"] == held
    assert meta["pt_record"] == f"matches the file ({held})"
    assert "test_mAP50-95" in meta
    record = record_path(tree.champion)
    saved = record.read_bytes()
    try:
        record.write_text(json.dumps({**json.loads(saved), "sha256": "0" * 64}))
        assert materialize([champion], instance=configured.instance, resources=RESOURCES).success
        meta = configured.metadata("champion")
        assert meta["partition"] == "unknown" and meta["dataset"] == "unknown"
        assert meta["pt_record"] == "does not match the file"
        assert meta["onnx_record"] == f"matches the file ({held})"
        assert meta["pt_sha256"] == sha256(tree.champion)  # the file's own, whatever the record
        assert "test_mAP50-95" not in meta  # no score without knowing whose model it is
    finally:
        record.write_bytes(saved)


def test_promoting_a_partition_that_was_never_trained_fails_and_changes_nothing(configured):
    before = configured.tree.champion.read_bytes()
    result = materialize(
        [champion],
        run_config={"ops": {"champion": {"config": {"partition": "2025-01-01"}}}},
        instance=configured.instance,
        resources=RESOURCES,
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "no trained model for 2025-01-01" in failure.step_failure_data.error.to_string()  # type: ignore[union-attr]
    assert configured.tree.champion.read_bytes() == before


def test_a_diverging_export_fails_the_blocking_check_and_is_not_published(configured, monkeypatch):
    tree = configured.tree
    published = tree.champion_onnx.read_bytes()
    folder = tree.model_dir(PARTITION)
    installed, record = (folder / "weights" / "best.onnx").read_bytes(), read_export_record(folder)
    real_export = export_module.export_onnx

    def export_then_tamper(weights, imgsz):
        good = real_export(weights, imgsz)
        return _tamper(good, good.with_name("tampered.onnx"))

    monkeypatch.setattr(export_module, "export_onnx", export_then_tamper)
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
    # The failed export never replaced the installed one, nor its record.
    assert (folder / "weights" / "best.onnx").read_bytes() == installed
    assert read_export_record(folder) == record
    assert configured.metadata("onnx_model")["installed"] is False


def test_a_launchpad_export_size_and_the_quality_floor(configured, monkeypatch):
    """The launchpad's imgsz reaches the export (read back from the file), and a model under
    RETRAIN_MIN_TEST_MAP50_95 is kept as a challenger whatever the champion scores."""
    tree = configured.tree
    champion_before = tree.champion.read_bytes(), tree.champion_onnx.read_bytes()
    monkeypatch.setenv("RETRAIN_MIN_TEST_MAP50_95", "0.99")
    result = materialize(
        [onnx_model],
        instance=configured.instance,
        partition_key=PARTITION,
        resources=RESOURCES,
        run_config={"ops": {"onnx_model": {"config": {"imgsz": 160}}}},
    )
    assert result.success
    meta = configured.metadata("onnx_model")
    assert meta["inputs"] == {"images": [1, 3, 160, 160]} and meta["export"]["imgsz"] == 160
    assert meta["export"]["imgsz_from"] == "launchpad"
    assert meta["export"]["size_mismatch"] == "exported at 160, trained at 96"
    assert meta["parity"]["imgsz"] == 160 and meta["parity"]["passed"]
    assert meta["verdict"] == "keep as challenger" and meta["gate"]["quality_floor"] == 0.99
    assert "below the quality floor 0.99" in meta["decision"]
    assert (tree.champion.read_bytes(), tree.champion_onnx.read_bytes()) == champion_before


def test_promotion_refuses_an_onnx_that_is_not_the_one_that_passed_parity(configured):
    tree = configured.tree
    onnx_path = tree.model_dir(PARTITION) / "weights" / "best.onnx"
    good, champion_before = onnx_path.read_bytes(), tree.champion.read_bytes()
    onnx_path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # one bit: another file
    try:
        result = materialize(
            [champion],
            run_config={"ops": {"champion": {"config": {"partition": PARTITION}}}},
            instance=configured.instance,
            resources=RESOURCES,
            raise_on_error=False,
        )
    finally:
        onnx_path.write_bytes(good)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.to_string()  # type: ignore[union-attr]
    assert "is not the file that passed parity" in message
    assert tree.champion.read_bytes() == champion_before


def _rows(detections: list[dict]) -> np.ndarray:
    return np.array(
        [[d["x1"], d["y1"], d["x2"], d["y2"], d["score"], d["cls"]] for d in detections]
    )


def _odd_images(folder: Path) -> list[Path]:
    """Landscape and portrait images, the shapes where letterbox mistakes show."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for width, height in ((200, 120), (120, 200), (256, 90), (90, 256)):
        prefix = f"s{width}x{height}"
        for sample in samples(2, seed=width, width=width, height=height, prefix=prefix):
            path = folder / f"{sample.name}.jpg"
            path.write_bytes(sample.image)
            paths.append(path)
    return paths


def test_parity_on_non_square_images_cannot_pass_hollow(configured, tmp_path):
    tree = configured.tree
    images = _odd_images(tmp_path / "odd")
    kwargs = {"score_tol": 0.001, "min_iou": 0.9, "min_boxes": 10, "top_k": 10}
    nothing_clears = check_parity(tree.champion, tree.champion_onnx, images, conf=0.999, **kwargs)
    assert nothing_clears.passed, nothing_clears
    assert nothing_clears.compared.startswith("top 10 rows of each image")
    assert nothing_clears.boxes_reference >= 10 * len(images)  # real boxes were compared
    # Told to trust the threshold whatever clears it, an empty comparison fails, never passes.
    hollow = {**kwargs, "min_boxes": 0}
    empty = check_parity(tree.champion, tree.champion_onnx, images, conf=1.01, **hollow)
    assert empty.compared.startswith("boxes scoring at least 1.01 (0 in PyTorch)")
    assert empty.boxes_reference == 0 and not empty.passed
    tampered = _tamper(tree.champion_onnx, tmp_path / "tampered.onnx")
    caught = check_parity(tree.champion, tampered, images, conf=0.999, **kwargs)
    assert not caught.passed


def test_the_champion_carries_its_card_and_both_files_give_the_same_boxes(
    configured, tmp_path, capsys
):
    """The deployer's contract: azaion.onnx.json and the ONNX's own metadata hold the card, and
    `azaion-assets predict` gives the same boxes from azaion.pt and azaion.onnx on landscape and
    portrait images."""
    tree = configured.tree
    card = read_card(tree.champion_onnx)
    record = read_record(tree.champion_onnx)
    assert card is not None and record is not None
    assert {k: record[k] for k in card} == card  # the published JSON card is the embedded one
    assert record["sha256"] == sha256(tree.champion_onnx)
    assert card["input"]["shape"] == [1, 3, card["export_imgsz"], card["export_imgsz"]]
    assert card["input"]["color_order"] == "RGB" and card["letterbox"]["pad_value"] == [114] * 3
    assert card["weights_sha256"] == sha256(tree.champion)
    assert card["dataset_partition"] == record["partition"]
    assert card["classes"]["0"] == "ArmorVehicle" and len(card["classes"]) == 80

    images = [str(p) for p in _odd_images(tmp_path / "odd")]
    results = {}
    for model_file in (tree.champion_onnx, tree.champion):
        assert main(["predict", str(model_file), *images, "--conf", "0.000001", "--json"]) == 0
        results[model_file.suffix] = [
            json.loads(line) for line in capsys.readouterr().out.split("\n") if line
        ]
    # A two-epoch model's scores tie near 1e-4, classes included, so rows are compared as
    # parity compares them: order-free, nearly all with a partner (the tiny detector of
    # test_cli_predict, whose scores mean something, must match box for box).
    for onnx_image, pt_image in zip(results[".onnx"], results[".pt"], strict=True):
        assert onnx_image["width"] != onnx_image["height"]
        rows = [_rows(image["detections"]) for image in (onnx_image, pt_image)]
        assert len(rows[0]) == len(rows[1]) == 300
        assert row_agreement(rows[0], rows[1], score_tol=1e-4, box_tol_px=0.5) >= 0.95


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


def test_with_no_picture_budget_nothing_is_drawn(tmp_path, monkeypatch, runtime_dir):
    _configure(monkeypatch, tmp_path / "azaion", runtime_dir)
    tree = DataTree.from_settings(load_settings()).ensure()
    write_samples(tree.data, 12, seed=2)
    with DagsterInstance.ephemeral() as instance:
        for budget, drawn in (("0", False), ("1000000", True)):
            monkeypatch.setenv("PICTURES_BUDGET_BYTES", budget)
            result = materialize(
                [annotations, dataset],
                instance=instance,
                partition_key=PARTITION,
                resources=RESOURCES,
                selection=[dataset],
            )
            assert result.success
            meta = result.asset_materializations_for_node("dataset")[0].metadata
            assert ("pictures" in meta) is drawn
            assert (tree.dataset_dir(PARTITION) / "report").is_dir() is drawn


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


def test_the_trained_champion_is_released_and_an_edge_device_gets_it_back(
    configured, release_env, tmp_path
):
    """The real pair (trained, exported, promoted above) through model_release over HTTP, then
    fetched as an edge device would: byte-identical, and the ONNX file runs in ONNX Runtime."""
    tree = DataTree.from_settings(load_settings())
    partition = held_partition(tree.champion)
    assert partition in (PARTITION, NEWER)
    result = materialize(
        [*GRAPH, model_release],
        instance=configured.instance,
        partition_key=partition,
        resources=RELEASE_RESOURCES,
        selection=[model_release],
    )
    assert result.success
    assert main(["release", "fetch", "--out", str(tmp_path / "edge")]) == 0
    edge = tmp_path / "edge"
    assert (edge / "azaion.pt").read_bytes() == tree.champion.read_bytes()
    assert (edge / "azaion.onnx").read_bytes() == tree.champion_onnx.read_bytes()
    card = json.loads((edge / "azaion.onnx.json").read_text())  # the card travels along
    assert card == card_json(tree.champion_onnx, read_card(tree.champion_onnx) or {})
    assert card["sha256"] == sha256(edge / "azaion.onnx")
    session = onnxruntime.InferenceSession(str(edge / "azaion.onnx"))
    size = int(TINY_PROFILE["EXPORT_ONNX_IMGSZ"])
    image = np.zeros((1, 3, size, size), dtype=np.float32)
    (output,) = session.run(None, {session.get_inputs()[0].name: image})
    assert np.asarray(output).shape == (1, 300, 6)
