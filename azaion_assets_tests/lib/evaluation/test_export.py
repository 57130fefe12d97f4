import json
from dataclasses import replace

import onnx
import pytest
from onnx import TensorProto, helper

from azaion_assets.lib.evaluation.export import (
    EXPORT_RECORD,
    ExportError,
    input_size,
    install_export,
    read_export_record,
    verified_export,
)
from azaion_assets.lib.evaluation.parity import Parity

PASSED = Parity(8, 64, "boxes", 20, 20, 0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, True)


def _tiny_onnx(path, size=64):
    """A one-node graph with the detector's input shape: enough for the export bookkeeping."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["output0"])],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, size, size])],
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.fixture
def model_dir(tmp_path):
    weights = tmp_path / "azaion-2026-12-01" / "weights"
    weights.mkdir(parents=True)
    (weights / "best.pt").write_bytes(b"weights v1")
    return weights.parent


def test_an_installed_export_is_verified_by_its_hashes(model_dir, tmp_path):
    weights = model_dir / "weights" / "best.pt"
    staged = _tiny_onnx(tmp_path / "staged.onnx")
    record = install_export(staged, weights, PASSED, extra={"imgsz_from": "EXPORT_ONNX_IMGSZ"})
    assert not staged.exists()  # renamed, not copied
    assert read_export_record(model_dir) == record
    assert record["input"] == {"images": [1, 3, 64, 64]} and record["imgsz"] == 64
    assert record["imgsz_from"] == "EXPORT_ONNX_IMGSZ"
    assert verified_export(model_dir, weights) == weights.with_suffix(".onnx")

    onnx_path = weights.with_suffix(".onnx")
    original = onnx_path.read_bytes()
    onnx_path.write_bytes(original + b"\0")  # another file under the same name
    with pytest.raises(ExportError, match="not the file that passed parity"):
        verified_export(model_dir, weights)
    onnx_path.write_bytes(original)
    weights.write_bytes(b"weights v2")  # retrained after the export
    with pytest.raises(ExportError, match="changed since"):
        verified_export(model_dir, weights)


def test_an_export_that_failed_parity_is_never_installed(model_dir, tmp_path):
    weights = model_dir / "weights" / "best.pt"
    staged = _tiny_onnx(tmp_path / "staged.onnx")
    with pytest.raises(ExportError):
        install_export(staged, weights, replace(PASSED, passed=False))
    assert not weights.with_suffix(".onnx").exists() and read_export_record(model_dir) is None
    with pytest.raises(ExportError, match="no ONNX export that passed parity"):
        verified_export(model_dir, weights)


def test_a_record_without_checksums_is_not_believed(model_dir):
    weights = model_dir / "weights" / "best.pt"
    onnx_path = _tiny_onnx(weights.with_suffix(".onnx"))
    old = {"onnx": str(onnx_path), "parity_passed": True, "parity": {}}  # written before 0.x
    (model_dir / EXPORT_RECORD).write_text(json.dumps(old))
    with pytest.raises(ExportError, match="predates checksums"):
        verified_export(model_dir, weights)


def test_the_input_size_is_read_from_the_file(tmp_path):
    assert input_size(_tiny_onnx(tmp_path / "a.onnx", 96)) == 96
