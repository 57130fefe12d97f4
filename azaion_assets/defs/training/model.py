"""Asset ``model``: ``models/azaion-YYYY-MM-DD/``, trained on the same day's dataset.

It starts from the base model or, with TRAINING_START=champion, fine-tunes the champion
(``lib.champion.start_weights``); how many fine-tunings followed the last full retraining is
read from this asset's own earlier materialisations (``training_start_from``). The new model is
a challenger either way. It is judged against the champion in ``onnx_model``, on its exported
ONNX file (what ships), not here: the PyTorch validation figures recorded here are training
diagnostics. A retry of a failed run resumes the interrupted training from its last
checkpoint, and a cancel stops at the next batch (see ``lib.training.trainer``). Torch and
Ultralytics are imported inside the step only.
"""

import json
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    DagsterInstance,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from azaion_assets.defs.instance_facts import GPU_POOL, MODEL, TRAINING_RECORD, value_of
from azaion_assets.defs.pictures import show
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.champion.start_weights import (
    CHAMPION,
    NO_WEIGHTS,
    StartWeights,
    choose_start,
)
from azaion_assets.lib.config.fields import IMGSZ_STRIDE, Scope
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.dataset.formed_dataset import DATA_YAML, read_manifest
from azaion_assets.lib.fsio.atomic import atomic_write_text
from azaion_assets.lib.pictures.charts import training_curves
from azaion_assets.lib.pictures.embed import Picture, Shown
from azaion_assets.lib.training.base_model import resolve_device
from azaion_assets.lib.training.offline import prepare_ultralytics
from azaion_assets.lib.training.train_params import TrainParams, TrainResult
from azaion_assets.lib.training.trainer import train

RESULTS_CSV = "results.csv"  # Ultralytics' per-epoch record in the training folder
HISTORY_CAP = 100  # earlier trainings read to count fine-tunings when none forces a full one
_AP_SCHEMA = TableSchema(
    columns=[
        TableColumn("slot", "int"),
        TableColumn("class", "string"),
        TableColumn("ap50", "float"),
        TableColumn("ap50_95", "float"),
    ]
)


class TrainingConfig(Config):
    """Per-run overrides from the launchpad; anything left unset comes from the settings.

    ``model`` set: a full retraining from that model, whatever TRAINING_START says. ``epochs``
    set: that many epochs, for a fine-tuning as for a full retraining.
    """

    model: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    imgsz: int | None = None
    device: str | None = None


def model(
    context: AssetExecutionContext, config: TrainingConfig, azaion_settings: AzaionSettingsResource
) -> MaterializeResult:
    settings = azaion_settings.load(Scope.TRAINING)
    tree = azaion_settings.tree()
    partition = context.partition_key
    dataset_dir = tree.dataset_dir(partition)
    manifest = read_manifest(dataset_dir)
    _check_imgsz(config)
    prepare_ultralytics(settings.runtime_dir)
    since_full = fine_tunings_since_full(context.instance, settings.training_full_every)
    start = choose_start(settings, tree, since_full, model=config.model, epochs=config.epochs)
    context.log.info(start.reason)
    params = _params(config, settings, start)
    context.log.info(f"training {params.model} on {dataset_dir.name} ({params.device})")
    result = train(
        dataset_dir / DATA_YAML,
        tree.model_dir(partition),
        params,
        data_version=manifest["data_version"],
        on_epoch=lambda stats: context.log.info(stats.line()),
        log=context.log.info,
    )
    # onnx_model exports at the size this model was trained at when the launchpad chose it.
    record = {"imgsz": params.imgsz, "imgsz_from": "launchpad" if config.imgsz else "settings"}
    atomic_write_text(result.run_dir / TRAINING_RECORD, json.dumps(record, indent=2))
    curves = _curves(result.run_dir, settings.pictures_budget_bytes)
    metadata = _metadata(result, params, manifest, start) | curves
    return MaterializeResult(metadata=metadata)


def build_model(days: DailyPartitionsDefinition) -> AssetsDefinition:
    return asset(
        partitions_def=days,
        deps=["dataset"],
        group_name="training",
        kinds={"pytorch", "yolo"},
        pool=GPU_POOL,
        description=(
            "Ultralytics YOLO trained on the same day's dataset: a challenger, judged on its ONNX "
            "export by onnx_model; the PyTorch validation figures here are training diagnostics"
        ),
    )(model)


def _curves(run_dir: Path, budget: int) -> dict:
    """The losses and validation mAP per epoch as one chart: on the page and in ``report/``. A
    chart that cannot be drawn says why instead: it never fails a trained model."""
    if not budget:
        return {}
    try:
        png = training_curves(run_dir / RESULTS_CSV)
        chart = Shown("training_curves.png", Picture("training curves", png=png))
        return {"training_curves": show(run_dir, [chart], budget)}
    except (OSError, ValueError) as exc:
        return {"training_curves": MetadataValue.md(f"*No chart: {exc}*")}


def fine_tunings_since_full(instance: DagsterInstance, full_every: int) -> int:
    """How many of the latest trainings fine-tuned the champion since the last full one: the
    ``model`` materialisations newest first, up to the first that was not a fine-tuning
    (recorded before this metadata existed, it was a full one)."""
    limit = full_every or HISTORY_CAP
    count = 0
    for record in instance.fetch_materializations(MODEL, limit=limit).records:
        if value_of(record, "training_start_from") != CHAMPION:
            break
        count += 1
    return count


def _check_imgsz(config: TrainingConfig) -> None:
    if config.imgsz is not None and (config.imgsz < IMGSZ_STRIDE or config.imgsz % IMGSZ_STRIDE):
        raise Failure(
            f"launchpad imgsz={config.imgsz}: must be a positive multiple of {IMGSZ_STRIDE} "
            "(Ultralytics would round it up, and the export would not match)",
            allow_retries=False,
        )


def _params(config: TrainingConfig, settings: Settings, start: StartWeights) -> TrainParams:
    return TrainParams(
        model=start.weights,
        epochs=start.epochs,
        batch=config.batch_size or settings.training_batch_size,
        imgsz=config.imgsz or settings.training_imgsz,
        save_period=settings.training_save_period,
        workers=settings.training_workers,
        device=resolve_device(config.device or settings.training_device),
        seed=settings.training_seed,
        amp=settings.training_amp,
        plots=settings.training_plots,
        optimizer=settings.training_optimizer,
        lr0=settings.training_lr0,
        start_sha256=start.sha256,
    )


def _metadata(
    result: TrainResult, params: TrainParams, manifest: dict, start: StartWeights
) -> dict:
    records = [
        TableRecord(
            {"slot": r["slot"], "class": r["name"], "ap50": r["ap50"], "ap50_95": r["ap50_95"]}
        )
        for r in result.per_class
    ]
    return {
        "path": MetadataValue.path(str(result.run_dir)),
        "weights": MetadataValue.path(str(result.best)),
        # Diagnostics: PyTorch weights on the valid split at the training size. The gate's
        # figures (the shipped ONNX on the test split) are onnx_model's.
        "diagnostic_val_mAP50": result.map50,
        "diagnostic_val_mAP50-95": result.map50_95,
        "diagnostic_val_precision": result.precision,
        "diagnostic_val_recall": result.recall,
        "diagnostic_val_ap_by_class": MetadataValue.table(records, schema=_AP_SCHEMA),
        "training_start": result.start,
        "training_start_reason": result.start_reason,
        # What the weights started from (texts: nothing here is plotted).
        "training_start_from": start.kind,
        "start_weights": start.weights,
        "start_weights_sha256": start.sha256 or NO_WEIGHTS,
        "start_reason": start.reason,
        "device": result.device,
        # What the device used: AMP and the CUDA versions only where they applied (CUDA).
        "amp": result.amp_note(),
        # Numbers an operator reads but would not plot across days: one JSON entry, so the
        # plots show the validation figures alone.
        "training_run": MetadataValue.json(
            {
                "epochs": result.epochs_completed,
                "resumed_after_epoch": result.resumed_from_epoch or 0,
                "wall_time_s": result.wall_seconds,
                "seed": params.seed,
                "fine_tunings_since_full": start.since_full,
            }
        ),
        "hyperparameters": MetadataValue.json(result.hyperparameters()),
        "versions": MetadataValue.json(result.versions),
        "dataset_partition": manifest["partition"],
        "dataset_data_version": manifest["data_version"],
        "dataset_images": MetadataValue.json(manifest["images"]),
    }
