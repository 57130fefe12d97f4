"""Train the Azaion detector with Ultralytics.

Heavy imports (torch, ultralytics) happen inside the functions, so importing this module stays
cheap for the code location, sensors and ingest runs. ``prepare_ultralytics`` must have run in
the process before ``train`` is called.
"""

from __future__ import annotations

import importlib.util
import platform
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from azaion_assets.core.atomic import replace_dir


class BaseModelError(ValueError):
    """TRAINING_MODEL names neither a weights file on disk nor a shipped architecture."""


@dataclass(frozen=True)
class TrainParams:
    model: str
    epochs: int
    batch: int
    imgsz: int
    save_period: int
    workers: int
    device: str
    seed: int
    amp: bool
    plots: bool
    optimizer: str = "auto"
    lr0: float = 0.01


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    epochs: int
    losses: dict[str, float]
    metrics: dict[str, float]

    def line(self) -> str:
        parts = [f"epoch {self.epoch}/{self.epochs}"]
        parts += [f"{k}={v:.4f}" for k, v in self.losses.items()]
        parts += [f"{k}={v:.4f}" for k, v in self.metrics.items()]
        return " ".join(parts)


@dataclass
class TrainResult:
    run_dir: Path
    best: Path
    last: Path
    map50: float
    map50_95: float
    precision: float
    recall: float
    per_class: list[dict[str, Any]]
    epochs_completed: int
    wall_seconds: float
    device: str
    params: TrainParams
    versions: dict[str, str] = field(default_factory=dict)

    def hyperparameters(self) -> dict[str, Any]:
        return asdict(self.params)


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


def _floats(values: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(v), 5) for k, v in values.items()}


def library_versions() -> dict[str, str]:
    import torch
    import ultralytics

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ultralytics": ultralytics.__version__,
        "cuda": str(torch.version.cuda),  # type: ignore[attr-defined]
    }


def train(
    data_yaml: Path,
    run_dir: Path,
    params: TrainParams,
    on_epoch: Callable[[EpochStats], None] = lambda _: None,
) -> TrainResult:
    """Train from scratch or from weights into ``run_dir`` and return the final validation."""
    from ultralytics import YOLO

    from azaion_assets.core.offline import disable_online_checks

    disable_online_checks(params.amp)
    # Train in a hidden folder and swap it in only on success: a failed re-run must not cost the
    # partition the model it already has.
    staging = run_dir.with_name(f".{run_dir.name}.training")
    if staging.exists():
        shutil.rmtree(staging)
    model = YOLO(params.model)

    logged: set[int] = set()

    def _epoch_end(trainer) -> None:
        epoch = trainer.epoch + 1
        if epoch in logged or epoch > trainer.epochs:
            return  # the final validation of best.pt fires this callback once more
        logged.add(epoch)
        losses = trainer.label_loss_items(trainer.tloss, prefix="train")
        metrics = {k: v for k, v in trainer.metrics.items() if k.startswith("metrics/")}
        on_epoch(EpochStats(epoch, trainer.epochs, _floats(losses), _floats(metrics)))

    model.add_callback("on_fit_epoch_end", _epoch_end)
    started = time.monotonic()
    results = model.train(
        data=str(data_yaml),
        project=str(staging.parent),
        name=staging.name,
        exist_ok=True,
        epochs=params.epochs,
        batch=params.batch,
        imgsz=params.imgsz,
        save_period=params.save_period,
        workers=params.workers,
        device=params.device,
        seed=params.seed,
        deterministic=True,
        amp=params.amp,
        plots=params.plots,
        optimizer=params.optimizer,
        lr0=params.lr0,
        nms=False,  # validate, and pick best.pt, on the NMS-free head that we export
        verbose=True,
    )
    wall = time.monotonic() - started
    trainer: Any = model.trainer  # a DetectionTrainer; typed loosely upstream
    assert trainer is not None and results is not None
    assert Path(trainer.save_dir).resolve() == staging.resolve(), trainer.save_dir
    replace_dir(staging, run_dir)
    box = results.box  # type: ignore[union-attr]
    names = results.names  # type: ignore[union-attr]
    per_class = [
        {
            "slot": int(c),
            "name": names[int(c)],
            "ap50": round(float(box.ap50[i]), 4),
            "ap50_95": round(float(box.ap[i]), 4),
        }
        for i, c in enumerate(box.ap_class_index)
    ]
    return TrainResult(
        run_dir=run_dir,
        best=run_dir / Path(trainer.best).relative_to(trainer.save_dir),
        last=run_dir / Path(trainer.last).relative_to(trainer.save_dir),
        map50=round(float(box.map50), 4),
        map50_95=round(float(box.map), 4),
        precision=round(float(box.mp), 4),
        recall=round(float(box.mr), 4),
        per_class=per_class,
        epochs_completed=int(trainer.epoch) + 1,
        wall_seconds=round(wall, 2),
        device=str(trainer.device),
        params=params,
        versions=library_versions(),
    )
