"""``azaion-assets predict``: the boxes in original pixels, as a table or JSON lines; exit 2 on
bad usage, naming the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from azaion_assets.cli.main import EXIT_CONFIG, main
from azaion_assets.lib.champion.edge_predict import predict_onnx
from azaion_assets_tests.tiny_detector import EXPORT_IMGSZ, TinyDetector, tiny_detector

CONF = "0.01"


@pytest.fixture(scope="module")
def detector(tmp_path_factory, runtime_dir) -> TinyDetector:
    return tiny_detector(tmp_path_factory, runtime_dir)


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.slow
def test_json_lines_hold_the_boxes_in_original_pixels(detector: TinyDetector, capsys, no_network):
    images = detector.images[2:4]  # 320x180
    assert main(["predict", str(detector.onnx), *map(str, images), "--json", "--conf", CONF]) == 0
    records = _lines(capsys.readouterr().out)
    assert [r["image"] for r in records] == [str(p) for p in images]
    assert {(r["width"], r["height"]) for r in records} == {(320, 180)}
    expected = predict_onnx(detector.onnx, images, 0.01)
    assert [r["detections"] for r in records] == [[d.as_dict() for d in e] for e in expected]
    assert max(d["x2"] for r in records for d in r["detections"]) > EXPORT_IMGSZ
    assert no_network == []


@pytest.mark.slow
def test_the_pt_prints_the_same_boxes(detector: TinyDetector, capsys, no_network):
    images = [str(p) for p in detector.images[4:6]]  # 128x160, portrait
    assert main(["predict", str(detector.onnx), *images, "--json", "--conf", CONF]) == 0
    from_onnx = _lines(capsys.readouterr().out)
    assert main(["predict", str(detector.pt), *images, "--json", "--conf", CONF]) == 0
    from_pt = _lines(capsys.readouterr().out)
    assert len(from_pt) == len(from_onnx) == 2 and any(r["detections"] for r in from_pt)
    for a, b in zip(from_onnx, from_pt, strict=True):
        assert len(a["detections"]) == len(b["detections"])
        for d, e in zip(a["detections"], b["detections"], strict=True):
            assert (d["cls"], d["name"]) == (e["cls"], e["name"])
            assert d["score"] == pytest.approx(e["score"], abs=0.01)
            for key in ("x1", "y1", "x2", "y2"):
                assert d[key] == pytest.approx(e[key], abs=0.5)
    assert no_network == []


@pytest.mark.slow
def test_a_fresh_process_prints_only_json(detector: TinyDetector, tmp_path):
    """As a deployer runs it: Ultralytics imported for the first time, with a new runtime dir
    (its first-run notices go to stderr, not into the JSON)."""
    env = {**os.environ, "AZAION_RUNTIME_DIR": str(tmp_path / "runtime")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    image = str(detector.images[0])
    argv = [sys.executable, "-m", "azaion_assets.cli.main", "predict", str(detector.pt), image]
    done = subprocess.run(
        [*argv, "--json", "--conf", CONF], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    (record,) = _lines(done.stdout)
    (expected,) = predict_onnx(detector.onnx, [detector.images[0]], 0.01)
    assert len(record["detections"]) == len(expected) > 0


@pytest.mark.slow
def test_the_table_names_each_image_and_box(detector: TinyDetector, capsys):
    image = detector.images[2]
    assert main(["predict", str(detector.onnx), str(image), "--conf", CONF]) == 0
    out = capsys.readouterr().out
    (dets,) = predict_onnx(detector.onnx, [image], 0.01)
    assert f"{image} (320x180): {len(dets)} detections, score > 0.01" in out
    assert "slot" in out and "x2" in out
    top = dets[0]
    assert f"{top.name:<24} {top.score:6.3f} {top.x1:8.1f} {top.y1:8.1f}" in out


@pytest.mark.slow
def test_the_conf_defaults_to_the_card_threshold(detector: TinyDetector, capsys):
    assert main(["predict", str(detector.onnx), str(detector.images[0]), "--json"]) == 0
    (record,) = _lines(capsys.readouterr().out)
    assert record["conf"] == 0.25
    assert all(d["score"] > 0.25 for d in record["detections"])


@pytest.mark.slow
def test_an_onnx_runs_only_at_its_export_size(detector: TinyDetector, capsys):
    args = ["predict", str(detector.onnx), str(detector.images[0]), "--imgsz", "96"]
    assert main(args) == EXIT_CONFIG
    assert (
        f"{detector.onnx}: exported for --imgsz {EXPORT_IMGSZ}, not 96" in capsys.readouterr().err
    )


def test_bad_usage_exits_2_naming_the_file(tmp_path, capsys):
    image = tmp_path / "frame.jpg"
    image.write_bytes(b"not a jpeg")
    model = tmp_path / "azaion.onnx"
    model.write_bytes(b"")
    cases = [
        (["predict", str(tmp_path / "missing.onnx"), str(image)], "missing.onnx: no such model"),
        (["predict", str(tmp_path / "weights.h5"), str(image)], "weights.h5: expected a .pt or"),
        (["predict", str(model), str(tmp_path / "gone.jpg")], "gone.jpg: no such image file"),
        (["predict", str(model), str(image)], "frame.jpg: not an image"),
        (["predict", str(model), str(image), "--conf", "1.5"], "frame.jpg: not an image"),
    ]
    for argv, message in cases:
        assert main(argv) == EXIT_CONFIG, argv
        assert message in capsys.readouterr().err


def test_a_pt_without_a_card_beside_it_needs_imgsz(tmp_path, capsys):
    import cv2
    import numpy as np

    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.zeros((20, 30, 3), dtype=np.uint8))
    model = tmp_path / "best.pt"
    model.write_bytes(b"weights")
    assert main(["predict", str(model), str(image)]) == EXIT_CONFIG
    assert f"{model}: no model card (best.onnx) beside it; pass --imgsz" in capsys.readouterr().err
    assert main(["predict", str(model), str(image), "--conf", "1.5"]) == EXIT_CONFIG
    assert "--conf 1.5: expected a score in [0, 1]" in capsys.readouterr().err
