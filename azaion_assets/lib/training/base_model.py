"""What a training starts from and runs on: the base model (TRAINING_MODEL) and the device.

Checked by ``azaion-assets config check`` as well as by the training step. Finding a shipped
architecture does not import Ultralytics, so a wrong TRAINING_MODEL is named up front, cheaply.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path


class BaseModelError(ValueError):
    """TRAINING_MODEL names neither a weights file on disk nor a shipped architecture."""


def ultralytics_dir() -> Path:
    """The installed Ultralytics package directory, found without importing it."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("ultralytics is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def shipped_architecture(name: str) -> Path | None:
    """The YAML Ultralytics would load for ``name`` (``yolo26n.yaml`` -> ``26/yolo26.yaml``)."""
    models = ultralytics_dir() / "cfg" / "models"
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", Path(name).stem) + ".yaml"
    for candidate in (Path(name).name, unified):
        found = sorted(models.rglob(candidate))
        if found:
            return found[0]
    return None


def resolve_base_model(setting: str, models_dir: Path) -> str:
    """Turn TRAINING_MODEL into what ``YOLO()`` should load, or raise naming what was tried."""
    if setting.endswith((".yaml", ".yml")):
        if shipped_architecture(setting) is None:
            raise BaseModelError(
                f"TRAINING_MODEL={setting}: no such architecture YAML ships with Ultralytics"
            )
        return setting
    if setting.endswith(".pt"):
        path = Path(setting)
        candidates = [path] if path.is_absolute() else [Path(models_dir) / path, path.resolve()]
        for candidate in candidates:
            if candidate.is_file():
                return str(candidate)
        tried = ", ".join(str(c) for c in candidates)
        raise BaseModelError(
            f"TRAINING_MODEL={setting}: weights file not found (looked at {tried}); "
            "weights are never downloaded, place the file there first"
        )
    raise BaseModelError(f"TRAINING_MODEL={setting}: expected a .pt file or an architecture .yaml")


def resolve_device(setting: str) -> str:
    """``auto`` means the first CUDA device if there is one, else the CPU."""
    if setting != "auto":
        return setting
    import torch

    return "0" if torch.cuda.is_available() else "cpu"
