import pytest

from azaion_assets.lib.training.base_model import (
    BaseModelError,
    resolve_base_model,
    resolve_device,
    shipped_architecture,
)


def _shipped_name(name: str) -> str | None:
    path = shipped_architecture(name)
    return path.name if path is not None else None


def test_shipped_architectures_resolve_like_ultralytics():
    assert _shipped_name("yolo26n.yaml") == "yolo26.yaml"
    assert _shipped_name("yolo26m.yaml") == "yolo26.yaml"
    assert _shipped_name("yolo11s.yaml") == "yolo11.yaml"
    assert _shipped_name("nonexistent9z.yaml") is None


def test_yaml_base_model_trains_from_scratch(tmp_path):
    assert resolve_base_model("yolo26n.yaml", tmp_path) == "yolo26n.yaml"
    with pytest.raises(BaseModelError, match="no such architecture"):
        resolve_base_model("yolo99q.yaml", tmp_path)


def test_pt_base_model_must_be_on_disk_and_the_error_names_the_paths(tmp_path):
    with pytest.raises(BaseModelError) as info:
        resolve_base_model("yolo26m.pt", tmp_path / "models")
    assert str(tmp_path / "models" / "yolo26m.pt") in str(info.value)
    assert "never downloaded" in str(info.value)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "yolo26m.pt").write_bytes(b"weights")
    assert resolve_base_model("yolo26m.pt", tmp_path / "models") == str(
        tmp_path / "models" / "yolo26m.pt"
    )
    absolute = tmp_path / "elsewhere.pt"
    absolute.write_bytes(b"w")
    assert resolve_base_model(str(absolute), tmp_path / "models") == str(absolute)


def test_other_base_models_are_rejected(tmp_path):
    with pytest.raises(BaseModelError, match=r"expected a \.pt file or an architecture \.yaml"):
        resolve_base_model("yolo26m.onnx", tmp_path)


def test_device_auto_picks_cpu_without_cuda_and_overrides_pass_through():
    import torch

    assert resolve_device("auto") == ("0" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu" and resolve_device("0,1") == "0,1"
