"""What a training takes (``TrainParams``), reports each epoch and returns (``TrainResult``).

Plain data, apart from the trainer, so that the step, the start plan and the tests share them
without importing anything heavy. What a result says about its device is decided here from the
device string alone (``amp_applies``, ``device_versions``): a CPU run must not report mixed
precision or CUDA versions it never used, and the CUDA side is testable without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

NO_AMP_DEVICES = frozenset({"cpu", "mps"})  # as Ultralytics' check_amp: AMP on accelerators only


def device_type(device: str) -> str:
    """``cpu``, ``mps``, ``cuda``...: torch's ``cuda:1`` or the setting's ``0`` / ``0,1``."""
    kind = device.lower().replace(" ", "").split(":")[0]
    return "cuda" if kind.replace(",", "").isdigit() else kind


def amp_applies(amp: bool, device: str) -> bool:
    """Whether the AMP setting takes effect on ``device``; the trainer's AMP check uses it too."""
    return amp and device_type(device) not in NO_AMP_DEVICES


def cuda_indices(device: str) -> list[int]:
    """The CUDA devices that ``device`` names: ``cuda`` is the first; none off CUDA."""
    text = device.lower().replace(" ", "")
    if device_type(text) != "cuda":
        return []
    indices = text.removeprefix("cuda").removeprefix(":").split(",")
    return [int(i) for i in indices if i.isdigit()] or [0]


def device_versions(
    device: str, cuda: str | None, cudnn: int | None, gpu_name: Callable[[int], str]
) -> dict[str, str]:
    """CUDA, cuDNN and GPU names for a run on CUDA; nothing for one that never used them."""
    indices = cuda_indices(device)
    if not indices:
        return {}
    return {"cuda": str(cuda), "cudnn": str(cudnn), "gpu": ", ".join(map(gpu_name, indices))}


def amp_note(amp: bool, used: bool, device: str) -> str:
    """The AMP line an operator reads: what happened, and why when it differs from the setting."""
    if used:
        return "on"
    if not amp:
        return "off (TRAINING_AMP=false)"
    if device_type(device) in NO_AMP_DEVICES:
        return f"not used on {device_type(device)} (AMP is for CUDA)"
    return f"off on {device}, though TRAINING_AMP=true"


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
    start_sha256: str | None = None  # of ``model`` when it is a weights file (``start_weights``)


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
    amp: bool  # mixed precision as used, which on a CPU is never, whatever params.amp says
    versions: dict[str, str] = field(default_factory=dict)  # CUDA ones on a CUDA run only
    start: str = "fresh"  # fresh | resume | finished | trained (see plan_start)
    start_reason: str = ""
    resumed_from_epoch: int | None = None  # epochs already done by the checkpoint resumed

    def hyperparameters(self) -> dict[str, Any]:
        """The parameters, with ``amp`` as used on the device rather than as asked for."""
        return {**asdict(self.params), "amp": self.amp}

    def amp_note(self) -> str:
        return amp_note(self.params.amp, self.amp, self.device)
