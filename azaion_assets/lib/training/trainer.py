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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from azaion_assets.lib.fsio.atomic import atomic_copy, replace_dir
from azaion_assets.lib.fsio.locks import file_lock
from azaion_assets.lib.proc.interrupts import StopRequest, deferred_interrupts
from azaion_assets.lib.training.checkpoints import (
    Checkpoint,
    find_resumable,
    load_checkpoint,
    prune_epoch_files,
    resume_mismatch,
    write_resume_record,
)


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
    start: str = "fresh"  # fresh | resume | finished | trained (see plan_start)
    start_reason: str = ""
    resumed_from_epoch: int | None = None  # epochs already done by the checkpoint resumed

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


class TrainingStopped(Exception):
    """Training stopped between batches on request and left a resumable checkpoint."""


@dataclass(frozen=True)
class Start:
    """How a training begins: fresh, resumed from a checkpoint, or already finished."""

    mode: str  # "fresh" | "resume" | "finished" (in staging) | "trained" (already in run_dir)
    reason: str
    checkpoint: Checkpoint | None = None


def training_identity(params: TrainParams, data_version: str) -> dict[str, Any]:
    """What a checkpoint must share with this training to be resumed by it.

    Device and dataloader workers may change between attempts (a retry can land on another
    GPU); everything that shapes the weights may not.
    """
    fixed = {k: v for k, v in asdict(params).items() if k not in ("device", "workers")}
    return {**fixed, "data_version": data_version}


def _final(weights: Path, epochs: int) -> bool:
    """``last.pt`` says every epoch was trained (stripped by Ultralytics, or not yet)."""
    last = load_checkpoint(weights / "last.pt") if (weights / "last.pt").is_file() else None
    return last is not None and (
        last.get("optimizer") is None or last.get("epoch", -1) >= epochs - 1
    )


def plan_start(
    staging: Path, params: TrainParams, identity: dict[str, Any], run_dir: Path | None = None
) -> Start:
    """Decide how this attempt starts, from what earlier attempts left.

    An attempt in progress (``staging``) comes first: resume it, or finish it if it trained
    every epoch. Otherwise, if ``run_dir`` already holds this very training (same dataset
    version and parameters, every epoch done), it is reused rather than trained again: that is
    where a step killed after the swap, during evaluation or promotion, left its work.
    """
    weights = staging / "weights"
    if not weights.is_dir():
        if run_dir is not None and _trained(run_dir, params, identity):
            return Start("trained", f"{run_dir.name} already holds this training: reusing it")
        return Start("fresh", "no earlier attempt: training from the start")
    mismatch = resume_mismatch(staging, identity)
    if mismatch is not None:
        return Start("fresh", f"an earlier attempt exists but {mismatch}: training from the start")
    if _final(weights, params.epochs):
        return Start("finished", "an earlier attempt finished training: validating its best.pt")
    found = find_resumable(weights, params.epochs)
    if found is None:
        return Start(
            "fresh", "an earlier attempt left no resumable checkpoint: training from the start"
        )
    return Start(
        "resume",
        f"resuming from {found.path.name} after epoch {found.epoch + 1}/{params.epochs}",
        found,
    )


def _trained(run_dir: Path, params: TrainParams, identity: dict[str, Any]) -> bool:
    weights = run_dir / "weights"
    return (
        resume_mismatch(run_dir, identity) is None
        and _final(weights, params.epochs)
        and load_checkpoint(weights / "best.pt") is not None
    )


def train(
    data_yaml: Path,
    run_dir: Path,
    params: TrainParams,
    data_version: str,
    on_epoch: Callable[[EpochStats], None] = lambda _: None,
    log: Callable[[str], None] = lambda _: None,
) -> TrainResult:
    """Train into ``run_dir``, resuming an interrupted attempt at the same training if any.

    Training happens in a hidden sibling folder that is swapped in only on success, so a
    failed re-run never costs the partition the model it already has; the folder is also what a
    retry resumes from. SIGINT/SIGTERM stop at the next batch boundary with a resumable
    checkpoint (see ``interrupts``).
    """
    with partition_lock(run_dir, log):
        return _train_locked(data_yaml, run_dir, params, data_version, on_epoch, log)


@contextmanager
def partition_lock(run_dir: Path, log: Callable[[str], None]) -> Iterator[None]:
    """One attempt at a partition's training at a time. A run whose maximum runtime expired is
    marked failed while its step may still be writing its checkpoint, and the retry can start
    meanwhile; it waits here. The kernel releases the lock of a process that died."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    waiting = f"waiting for an earlier attempt at {run_dir.name} to stop"
    with file_lock(run_dir.with_name(f".{run_dir.name}.lock"), on_wait=lambda: log(waiting)):
        yield


def _train_locked(
    data_yaml: Path,
    run_dir: Path,
    params: TrainParams,
    data_version: str,
    on_epoch: Callable[[EpochStats], None],
    log: Callable[[str], None],
) -> TrainResult:
    from azaion_assets.lib.training.offline import disable_online_checks

    disable_online_checks(params.amp)
    staging = run_dir.with_name(f".{run_dir.name}.training")
    identity = training_identity(params, data_version)
    start = plan_start(staging, params, identity, run_dir)
    log(start.reason)
    started = time.monotonic()
    if start.mode in ("finished", "trained"):
        folder = staging if start.mode == "finished" else run_dir
        trainer, results = None, _finish(folder, data_yaml, params)
        epochs = params.epochs
    else:
        model, kwargs = _prepare(start, staging, data_yaml, params, identity)
        _add_callbacks(model, on_epoch)
        with deferred_interrupts() as stop:
            model.add_callback("on_train_batch_end", lambda t: _stop_between_batches(t, stop, log))
            results = model.train(**kwargs)
        trainer = model.trainer
        assert trainer is not None and results is not None
        assert Path(trainer.save_dir).resolve() == staging.resolve(), trainer.save_dir
        epochs = int(trainer.epoch) + 1  # type: ignore[attr-defined]
    wall = time.monotonic() - started
    if start.mode != "trained":
        replace_dir(staging, run_dir)
    return _result(run_dir, results, params, epochs, wall, start, _device(trainer, params))


def _prepare(
    start: Start, staging: Path, data_yaml: Path, params: TrainParams, identity: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    from ultralytics import YOLO

    common = {"data": str(data_yaml), "device": params.device, "workers": params.workers}
    if start.checkpoint is not None:
        resume = {"resume": str(start.checkpoint.path), "save_dir": str(staging)}
        return YOLO(str(start.checkpoint.path)), {**common, **resume}
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    write_resume_record(staging, identity)
    return YOLO(params.model), {
        **common,
        "project": str(staging.parent),
        "name": staging.name,
        "exist_ok": True,
        "epochs": params.epochs,
        "batch": params.batch,
        "imgsz": params.imgsz,
        "save_period": params.save_period,
        "seed": params.seed,
        "deterministic": True,
        "amp": params.amp,
        "plots": params.plots,
        "optimizer": params.optimizer,
        "lr0": params.lr0,
        "nms": False,  # validate, and pick best.pt, on the NMS-free head that we export
        "verbose": True,
    }


def _add_callbacks(model: Any, on_epoch: Callable[[EpochStats], None]) -> None:
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
    model.add_callback("on_model_save", lambda trainer: prune_epoch_files(Path(trainer.wdir)))


def _stop_between_batches(trainer: Any, stop: StopRequest, log: Callable[[str], None]) -> None:
    """Ultralytics calls this after every batch: the one safe place to stop a cancelled run."""
    if not stop.requested:
        return
    epoch = trainer.epoch
    # The resume redoes the interrupted epoch; only the first epoch, which has nothing before
    # it to resume from, counts as done once interrupted. Half an epoch's weights never
    # become best.pt: save_model writes best.pt too when the last validation was the best.
    trainer.epoch = max(epoch - 1, 0)
    trainer.best = Path(trainer.wdir) / ".cancelled-best.pt"
    trainer.save_model()
    trainer.best.unlink(missing_ok=True)
    message = (
        f"cancelled: stopped during epoch {epoch + 1}/{trainer.epochs}, resumable checkpoint "
        f"{trainer.last} (resumes after epoch {trainer.epoch + 1})"
    )
    log(message)
    raise TrainingStopped(message)


def _finish(staging: Path, data_yaml: Path, params: TrainParams) -> Any:
    """A training whose every epoch is done: finalise its weights as Ultralytics would
    (optimizer stripped; a torn best.pt replaced by last.pt) and validate best.pt like the end
    of training."""
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import strip_optimizer

    weights = staging / "weights"
    last = load_checkpoint(weights / "last.pt")
    best = load_checkpoint(weights / "best.pt")
    if best is None:  # torn while being stripped
        atomic_copy(weights / "last.pt", weights / "best.pt")
        best = last
    for name, ckpt in (("last.pt", last), ("best.pt", best)):
        if ckpt is not None and ckpt.get("optimizer") is not None:
            strip_optimizer(weights / name)
    return YOLO(str(weights / "best.pt")).val(
        data=str(data_yaml),
        nms=False,  # as training validated: the head we export
        imgsz=params.imgsz,
        batch=params.batch,
        device=params.device,
        plots=False,
        project=str(staging),
        name="final-val",
        exist_ok=True,
    )


def _device(trainer: Any, params: TrainParams) -> str:
    return str(trainer.device) if trainer is not None else params.device


def _result(
    run_dir: Path,
    results: Any,
    params: TrainParams,
    epochs: int,
    wall: float,
    start: Start,
    device: str,
) -> TrainResult:
    box = results.box
    names = results.names
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
        best=run_dir / "weights" / "best.pt",
        last=run_dir / "weights" / "last.pt",
        map50=round(float(box.map50), 4),
        map50_95=round(float(box.map), 4),
        precision=round(float(box.mp), 4),
        recall=round(float(box.mr), 4),
        per_class=per_class,
        epochs_completed=epochs,
        wall_seconds=round(wall, 2),
        device=device,
        params=params,
        versions=library_versions(),
        start=start.mode,
        start_reason=start.reason,
        resumed_from_epoch=start.checkpoint.epoch + 1 if start.checkpoint else None,
    )
