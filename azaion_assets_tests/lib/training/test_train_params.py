"""What a training result reports about its device: only what applied to the device it used.

The CUDA side is decided from the device string alone, so it is tested here without a GPU; the
CPU side is also shown by a real training in ``test_trainer``.
"""

from pathlib import Path

import pytest

from azaion_assets.lib.training.train_params import (
    TrainParams,
    TrainResult,
    amp_applies,
    amp_note,
    cuda_indices,
    device_versions,
)

PARAMS = TrainParams("yolo26n.yaml", 1, 2, 64, 1, 0, "cpu", 0, amp=True, plots=False)


def _gpu_name(index: int) -> str:
    return f"NVIDIA H200 #{index}"


@pytest.mark.parametrize(
    ("device", "indices"),
    [
        ("cpu", []),
        ("mps", []),
        ("cuda", [0]),
        ("cuda:1", [1]),
        ("0", [0]),
        ("0,1", [0, 1]),
        ("0, 1", [0, 1]),
    ],
)
def test_the_cuda_devices_a_device_string_names(device, indices):
    assert cuda_indices(device) == indices


def test_amp_applies_on_cuda_only_and_only_when_asked_for():
    assert amp_applies(True, "cuda:0") and amp_applies(True, "0")
    assert not amp_applies(True, "cpu") and not amp_applies(True, "mps")
    assert not amp_applies(False, "cuda:0")


def test_cuda_versions_and_gpu_names_only_for_a_cuda_run():
    assert device_versions("cpu", "12.8", 90100, _gpu_name) == {}
    assert device_versions("cuda:0", "12.8", 90100, _gpu_name) == {
        "cuda": "12.8",
        "cudnn": "90100",
        "gpu": "NVIDIA H200 #0",
    }
    assert device_versions("0,1", "12.8", 90100, _gpu_name)["gpu"] == (
        "NVIDIA H200 #0, NVIDIA H200 #1"
    )


def test_the_amp_note_says_what_happened_and_why():
    assert amp_note(True, True, "cuda:0") == "on"
    assert amp_note(False, False, "cuda:0") == "off (TRAINING_AMP=false)"
    assert amp_note(True, False, "cpu") == "not used on cpu (AMP is for CUDA)"


def _result(device: str, amp: bool) -> TrainResult:
    run = Path("/nowhere")
    return TrainResult(
        run, run / "best.pt", run / "last.pt", 0.0, 0.0, 0.0, 0.0, [], 1, 1.0, device, PARAMS, amp
    )


def test_the_hyperparameters_report_amp_as_used_not_as_asked():
    assert _result("cpu", False).hyperparameters()["amp"] is False
    assert _result("cuda:0", True).hyperparameters()["amp"] is True
    assert _result("cpu", False).amp_note() == "not used on cpu (AMP is for CUDA)"
