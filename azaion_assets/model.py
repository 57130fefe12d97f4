"""Asset ``model``: ``models/azaion-YYYY-MM-DD/``, trained on the same day's dataset.

The best weights of the run are copied atomically to ``models/azaion.pt``, the model that the
rest of the Azaion platform picks up. Torch and Ultralytics are imported inside the step only.
"""

from dagster import (
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from azaion_assets.core.forming import DATA_YAML, read_manifest
from azaion_assets.core.offline import prepare_ultralytics
from azaion_assets.core.publish import publish
from azaion_assets.core.training import TrainParams, resolve_base_model, resolve_device, train
from azaion_assets.dataset import dataset
from azaion_assets.partitions import daily_partitions
from azaion_assets.resources import AzaionSettingsResource

_AP_SCHEMA = TableSchema(
    columns=[
        TableColumn("slot", "int"),
        TableColumn("class", "string"),
        TableColumn("ap50", "float"),
        TableColumn("ap50_95", "float"),
    ]
)


class TrainingConfig(Config):
    """Per-run overrides from the launchpad; anything left unset comes from the settings."""

    model: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    imgsz: int | None = None
    device: str | None = None


@asset(
    partitions_def=daily_partitions,
    deps=[dataset],
    group_name="training",
    kinds={"pytorch", "yolo"},
    description="Ultralytics YOLO trained on the same day's dataset; best weights -> azaion.pt",
)
def model(
    context: AssetExecutionContext, config: TrainingConfig, settings: AzaionSettingsResource
) -> MaterializeResult:
    s = settings.load()
    tree = settings.tree()
    partition = context.partition_key
    dataset_dir = tree.dataset_dir(partition)
    manifest = read_manifest(dataset_dir)
    prepare_ultralytics(s.runtime_dir)
    params = TrainParams(
        model=resolve_base_model(config.model or s.training_model, tree.models),
        epochs=config.epochs or s.training_epochs,
        batch=config.batch_size or s.training_batch_size,
        imgsz=config.imgsz or s.training_imgsz,
        save_period=s.training_save_period,
        workers=s.training_workers,
        device=resolve_device(config.device or s.training_device),
        seed=s.training_seed,
        amp=s.training_amp,
        plots=s.training_plots,
        optimizer=s.training_optimizer,
        lr0=s.training_lr0,
    )
    context.log.info(f"training {params.model} on {dataset_dir.name} ({params.device})")
    result = train(
        dataset_dir / DATA_YAML,
        tree.model_dir(partition),
        params,
        on_epoch=lambda stats: context.log.info(stats.line()),
    )
    published = publish(result.best, tree.champion, partition)
    context.log.info(f"mAP50-95 {result.map50_95:.4f}; {tree.champion.name}: {published.reason}")
    records = [
        TableRecord(
            {"slot": r["slot"], "class": r["name"], "ap50": r["ap50"], "ap50_95": r["ap50_95"]}
        )
        for r in result.per_class
    ]
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(result.run_dir)),
            "weights": MetadataValue.path(str(result.best)),
            "champion": MetadataValue.path(str(tree.champion)),
            "published": published.published,
            "champion_partition": published.partition or "",
            "mAP50": result.map50,
            "mAP50-95": result.map50_95,
            "precision": result.precision,
            "recall": result.recall,
            "ap_by_class": MetadataValue.table(records, schema=_AP_SCHEMA),
            "epochs": result.epochs_completed,
            "wall_time_s": result.wall_seconds,
            "device": result.device,
            "seed": params.seed,
            "hyperparameters": MetadataValue.json(result.hyperparameters()),
            "versions": MetadataValue.json(result.versions),
            "dataset_partition": partition,
            "dataset_data_version": manifest["data_version"],
            "dataset_images": MetadataValue.json(manifest["images"]),
        },
    )
