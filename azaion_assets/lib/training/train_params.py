"""What a training takes (``TrainParams``), reports each epoch and returns (``TrainResult``).

Plain data, apart from the trainer, so that the step, the start plan and the tests share them
without importing anything heavy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


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
    start: str = "fresh"  # fresh | resume | finished | trained (see plan_start)
    start_reason: str = ""
    resumed_from_epoch: int | None = None  # epochs already done by the checkpoint resumed

    def hyperparameters(self) -> dict[str, Any]:
        return asdict(self.params)
