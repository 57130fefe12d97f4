"""Train the Azaion detector with Ultralytics.

Heavy imports (torch, ultralytics) happen inside the functions, so importing this module stays
cheap for the code location, sensors and ingest runs. ``prepare_ultralytics`` must have run in
the process before ``train`` is called. What to train from (the base model or the champion) is
chosen by ``champion.start_weights`` and passed in; how an attempt starts (fresh, resumed,
finished) is ``start_plan``.
"""

from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from azaion_assets.lib.fsio.atomic import atomic_copy, replace_dir
from azaion_assets.lib.fsio.locks import file_lock
from azaion_assets.lib.proc.interrupts import StopRequest, deferred_interrupts
from azaion_assets.lib.training.checkpoints import (
    load_checkpoint,
    prune_epoch_files,
    write_resume_record,
)
from azaion_assets.lib.training.offline import disable_online_checks
from azaion_assets.lib.training.start_plan import (
    Start,
    plan_start,
    training_identity,
    verify_start_weights,
)
from azaion_assets.lib.training.train_params import (
    EpochStats,
    TrainParams,
    TrainResult,
    amp_applies,
    device_versions,
)


def _floats(values: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(v), 5) for k, v in values.items()}


def library_versions(device: str) -> dict[str, str]:
    """The versions a training ran with; CUDA, cuDNN and the GPU only where ``device`` is CUDA."""
    import torch
    import ultralytics

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ultralytics": ultralytics.__version__,
        **device_versions(
            device,
            torch.version.cuda,  # type: ignore[attr-defined]
            torch.backends.cudnn.version(),
            torch.cuda.get_device_name,
        ),
    }


class TrainingStopped(Exception):
    """Training stopped between batches on request and left a resumable checkpoint."""


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
    with file_lock(training_lock_file(run_dir), on_wait=lambda: log(waiting)):
        yield


def training_lock_file(run_dir: Path) -> Path:
    """The lock ``partition_lock`` holds; housekeeping takes it too before it removes the
    partition's model folder."""
    return run_dir.with_name(f".{run_dir.name}.lock")


def _train_locked(
    data_yaml: Path,
    run_dir: Path,
    params: TrainParams,
    data_version: str,
    on_epoch: Callable[[EpochStats], None],
    log: Callable[[str], None],
) -> TrainResult:
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
    device = _device(trainer, params)
    # The trainer knows whether it used AMP; one finished earlier (no trainer now) or set up in
    # another process (DDP) is judged by the rule the trainer's AMP check applies.
    used = getattr(trainer, "amp", None)
    amp = amp_applies(params.amp, device) if used is None else bool(used)
    return _result(run_dir, results, params, epochs, wall, start, device, amp)


def _prepare(
    start: Start, staging: Path, data_yaml: Path, params: TrainParams, identity: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    from ultralytics import YOLO

    common = {"data": str(data_yaml), "device": params.device, "workers": params.workers}
    if start.checkpoint is not None:
        resume = {"resume": str(start.checkpoint.path), "save_dir": str(staging)}
        return YOLO(str(start.checkpoint.path)), {**common, **resume}
    verify_start_weights(params.model, params.start_sha256)
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
    amp: bool,
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
        amp=amp,
        versions=library_versions(device),
        start=start.mode,
        start_reason=start.reason,
        resumed_from_epoch=start.checkpoint.epoch + 1 if start.checkpoint else None,
    )
