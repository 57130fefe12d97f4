"""The model card: read from the ONNX file itself, embedded without touching the graph."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from azaion_assets.lib.champion import card as card_module
from azaion_assets.lib.champion.card import (
    CardError,
    build_card,
    card_json,
    embed_card,
    read_card,
)
from azaion_assets.lib.evaluation.preprocess import prepare
from azaion_assets.lib.fsio.digest import sha256
from azaion_assets.lib.labels.classes import NUM_SLOTS
from azaion_assets_tests.tiny_detector import (
    EXPORT_IMGSZ,
    PARTITION,
    TRAIN_IMGSZ,
    TinyDetector,
    tiny_detector,
)

SLOTS = {slot: f"Class-{slot}" for slot in range(NUM_SLOTS)} | {0: "ArmorVehicle", 20: "A(Wint)"}


@pytest.fixture(scope="module")
def detector(tmp_path_factory, runtime_dir) -> TinyDetector:
    return tiny_detector(tmp_path_factory, runtime_dir)


def _onnx(path: Path, input_shape: list[int], output_shape: list[int]) -> Path:
    """A stand-in detector: one input, one output of a fixed shape (a constant)."""
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, output_shape)
    const = helper.make_node(
        "ConstantOfShape",
        ["shape"],
        ["output0"],
        value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5]),
    )
    shape = helper.make_tensor("shape", TensorProto.INT64, [len(output_shape)], output_shape)
    graph = helper.make_graph(
        [const],
        "stand-in",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, input_shape)],
        [out],
        initializer=[shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.metadata_props.add(key="stride", value="32")  # as Ultralytics writes its own
    onnx.save(model, str(path))
    return path


def _card(path: Path, **overrides) -> dict:
    args = {
        "slot_names": SLOTS,
        "training_imgsz": 96,
        "dataset_partition": "2026-11-25",
        "score_threshold": 0.3,
        "weights_sha256": "ab" * 32,
    } | overrides
    return build_card(path, **args)


def test_the_input_and_output_come_from_the_file(tmp_path):
    card = _card(_onnx(tmp_path / "m.onnx", [1, 3, 64, 64], [1, 300, 6]))
    assert card["input"]["name"] == "images"
    assert card["input"]["shape"] == [1, 3, 64, 64] and card["input"]["dtype"] == "float32"
    assert card["input"]["color_order"] == "RGB" and card["input"]["layout"] == "NCHW"
    assert card["letterbox"]["size"] == 64 == card["export_imgsz"]
    assert card["letterbox"]["pad_value"] == [114, 114, 114]
    assert card["output"]["shape"] == [1, 300, 6]
    assert card["output"]["row"] == ["x1", "y1", "x2", "y2", "score", "class"]
    assert card["training_imgsz"] == 96 and card["score_threshold"] == 0.3
    assert card["classes"]["0"] == "ArmorVehicle" and card["classes"]["79"] == "Class-79"
    assert len(card["classes"]) == NUM_SLOTS
    assert "azaion-assets predict" in card["reference"]
    assert "lib/evaluation/preprocess.py" in card["reference"]
    assert json.loads(json.dumps(card)) == card


@pytest.mark.parametrize(
    ("input_shape", "output_shape"),
    [
        ([1, 3, 64, 96], [1, 300, 6]),  # not square
        ([1, 3, "h", "w"], [1, 300, 6]),  # dynamic
        ([1, 3, 64, 64], [1, 84, 8400]),  # the one-to-many head: needs NMS
    ],
)
def test_only_the_fixed_square_end_to_end_detector_gets_a_card(tmp_path, input_shape, output_shape):
    path = _onnx(tmp_path / "m.onnx", input_shape, output_shape)
    with pytest.raises(CardError, match=r"m\.onnx"):
        _card(path)


def test_all_80_slots_must_be_named(tmp_path):
    path = _onnx(tmp_path / "m.onnx", [1, 3, 64, 64], [1, 300, 6])
    with pytest.raises(CardError, match="80"):
        _card(path, slot_names={0: "ArmorVehicle"})


def test_the_card_round_trips_and_replaces_an_earlier_one(tmp_path):
    path = _onnx(tmp_path / "m.onnx", [1, 3, 64, 64], [1, 300, 6])
    assert read_card(path) is None
    graph = onnx.load(str(path)).graph.SerializeToString()
    embed_card(path, _card(path, score_threshold=0.1))
    card = _card(path)
    embed_card(path, card_json(path, card))  # a sha256 in the card stays out of the file
    assert read_card(path) == card
    props = onnx.load(str(path)).metadata_props
    keys = [p.key for p in props]
    assert keys.count("azaion.score_threshold") == 1 and "azaion.sha256" not in keys
    assert {"stride", "azaion.format", "azaion.classes"} <= set(keys)
    assert json.loads(next(p.value for p in props if p.key == "azaion.input"))["shape"][2] == 64
    assert next(p for p in props if p.key == "stride").value == "32"  # others' metadata kept
    assert onnx.load(str(path)).graph.SerializeToString() == graph


def test_the_json_card_carries_the_sha256_of_the_final_file(tmp_path):
    path = _onnx(tmp_path / "m.onnx", [1, 3, 64, 64], [1, 300, 6])
    card = _card(path)
    embed_card(path, card)
    loaded = card_json(path, card)
    assert loaded["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert {k: v for k, v in loaded.items() if k != "sha256"} == card


def test_a_failed_embed_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = _onnx(tmp_path / "m.onnx", [1, 3, 64, 64], [1, 300, 6])
    before = path.read_bytes()

    card = _card(path)

    def broken(_fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken)  # the new file is written, then cannot be synced
    with pytest.raises(OSError, match="disk full"):
        embed_card(path, card)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temp file left


@pytest.mark.slow
def test_the_embedded_card_describes_the_trained_export(detector: TinyDetector):
    card = read_card(detector.onnx)
    assert card is not None
    assert card["input"]["shape"] == [1, 3, EXPORT_IMGSZ, EXPORT_IMGSZ]
    assert card["output"]["shape"] == [1, 300, 6]
    assert (card["training_imgsz"], card["export_imgsz"]) == (TRAIN_IMGSZ, EXPORT_IMGSZ)
    assert card["dataset_partition"] == PARTITION
    assert card["weights_sha256"] == sha256(detector.pt)
    assert card["classes"] == {str(k): v for k, v in detector.slot_names.items()}
    assert card["classes"]["20"] == "ArmorVehicle(Wint)" and card["classes"]["6"] == "MilitaryMan"
    assert read_card(detector.plain_onnx) is None


@pytest.mark.slow
def test_embedding_changes_nothing_but_the_metadata(detector: TinyDetector):
    import onnxruntime as ort

    plain, carded = onnx.load(str(detector.plain_onnx)), onnx.load(str(detector.onnx))
    assert plain.graph.SerializeToString() == carded.graph.SerializeToString()
    assert card_module.KEY_PREFIX not in "".join(p.key for p in plain.metadata_props)
    sessions = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        for p in (detector.plain_onnx, detector.onnx)
    ]
    for image in detector.images:
        x, _ = prepare(image, EXPORT_IMGSZ)
        before, after = (np.asarray(s.run(None, {"images": x})[0]) for s in sessions)
        assert before.shape == (1, 300, 6)
        assert np.array_equal(before, after)


def test_the_card_comes_back_whole_from_a_publish_record(tmp_path):
    path = _onnx(tmp_path / "m.onnx", [1, 3, 64, 64], [1, 300, 6])
    card = card_module.card_json(path, _card(path))
    assert set(card) == set(card_module.CARD_FIELDS)  # the field list names every field
    record = {**card, "partition": "2026-11-25", "source": "/azaion/models/x", "reason": "r"}
    assert card_module.card_from_record(record) == card
    assert card_module.card_from_record({"partition": "2026-11-25", "sha256": "00"}) is None
    assert card_module.card_from_record(None) is None
