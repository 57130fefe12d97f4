"""How onnx_model picks its export size: the launchpad, else the training's launchpad size, else
EXPORT_ONNX_IMGSZ, with a mismatch against the training size reported."""

import json

import pytest
from dagster import Failure

from azaion_assets.defs.instance_facts import TRAINING_RECORD
from azaion_assets.defs.release.onnx_model import ExportConfig, _export_sizes
from azaion_assets.lib.config.settings import Settings

SETTINGS = Settings(EXPORT_ONNX_IMGSZ=640)  # type: ignore[call-arg]


def _trained(folder, imgsz, source):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TRAINING_RECORD).write_text(json.dumps({"imgsz": imgsz, "imgsz_from": source}))
    return folder


def test_the_settings_decide_when_nothing_was_overridden(tmp_path):
    sizes = _export_sizes(ExportConfig(), SETTINGS, _trained(tmp_path, 640, "settings"))
    assert sizes == {
        "imgsz": 640,
        "imgsz_from": "EXPORT_ONNX_IMGSZ",
        "training_imgsz": 640,
        "size_mismatch": "none",
    }


def test_a_training_launchpad_size_reaches_the_export(tmp_path):
    sizes = _export_sizes(ExportConfig(), SETTINGS, _trained(tmp_path, 320, "launchpad"))
    assert sizes["imgsz"] == 320 and sizes["imgsz_from"] == "the training's launchpad imgsz"
    assert sizes["size_mismatch"] == "none"


def test_the_export_launchpad_wins_and_a_mismatch_is_reported(tmp_path):
    sizes = _export_sizes(ExportConfig(imgsz=256), SETTINGS, _trained(tmp_path, 320, "launchpad"))
    assert sizes["imgsz"] == 256 and sizes["imgsz_from"] == "launchpad"
    assert sizes["size_mismatch"] == "exported at 256, trained at 320"


def test_a_model_trained_before_the_record_still_exports(tmp_path):
    sizes = _export_sizes(ExportConfig(), SETTINGS, tmp_path)
    assert sizes["imgsz"] == 640 and sizes["training_imgsz"] == SETTINGS.training_imgsz


@pytest.mark.parametrize("imgsz", [200, 0, -32])
def test_a_launchpad_size_ultralytics_would_round_fails_the_step(tmp_path, imgsz):
    with pytest.raises(Failure, match="multiple of 32"):
        _export_sizes(ExportConfig(imgsz=imgsz), SETTINGS, tmp_path)
