"""Asset ``model``: ``models/azaion-YYYY-MM-DD/``, trained on the same day's dataset.

The new model is a challenger: it is judged against ``models/azaion.pt`` (the champion, which
the rest of the Azaion platform picks up) on the new test split (see ``core.champion``), and
replaces it, once its ONNX export passes parity, only if it scores at least as well; otherwise
it stays in its dated folder, and an operator can still promote it with ``promote_model``.
A retry of a failed run resumes the interrupted training from its last checkpoint, and a
cancel stops at the next batch (see ``core.training``). Torch and Ultralytics are imported
inside the step only.
"""

from pathlib import Path

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

from azaion_assets.core.champion import (
    Verdict,
    evaluate,
    judge,
    write_evaluation,
)
from azaion_assets.core.datatree import DataTree
from azaion_assets.core.forming import DATA_YAML, read_manifest
from azaion_assets.core.offline import prepare_ultralytics
from azaion_assets.core.publish import held_partition
from azaion_assets.core.settings import Settings
from azaion_assets.core.training import (
    TrainParams,
    TrainResult,
    resolve_base_model,
    resolve_device,
    train,
)
from azaion_assets.dataset import dataset
from azaion_assets.partitions import daily_partitions
from azaion_assets.resources import AzaionSettingsResource

GPU_POOL = "gpu"  # dagster.yaml limits it: one training step at a time, whoever launched it
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
    pool=GPU_POOL,
    description=(
        "Ultralytics YOLO trained on the same day's dataset; replaces the champion azaion.pt "
        "only if it scores at least as well on the same test split"
    ),
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
    params = _params(config, s, tree)
    context.log.info(f"training {params.model} on {dataset_dir.name} ({params.device})")
    result = train(
        dataset_dir / DATA_YAML,
        tree.model_dir(partition),
        params,
        data_version=manifest["data_version"],
        on_epoch=lambda stats: context.log.info(stats.line()),
        log=context.log.info,
    )
    verdict = _judge(result, dataset_dir, tree, s.retrain_promotion_tolerance)
    write_evaluation(result.run_dir, verdict)
    context.log.info(verdict.reason)
    return MaterializeResult(
        metadata={**_metadata(result, params, manifest), **_verdict_metadata(verdict)}
    )


def _params(config: TrainingConfig, s: Settings, tree: DataTree) -> TrainParams:
    return TrainParams(
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


def _judge(result: TrainResult, dataset_dir: Path, tree: DataTree, tolerance: float) -> Verdict:
    """Score the new model and the champion on the new test split, and compare."""
    p = result.params
    data_yaml, workdir = dataset_dir / DATA_YAML, result.run_dir / "evaluation"
    challenger = evaluate(result.best, data_yaml, p.imgsz, p.batch, p.device, workdir)
    held = held_partition(tree.champion)
    champion, error = None, None
    if held is not None:
        try:
            champion = evaluate(tree.champion, data_yaml, p.imgsz, p.batch, p.device, workdir)
        except Exception as exc:  # a champion of other classes, or a damaged file
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
    return judge(challenger, champion, held, tolerance, champion_error=error)


def _verdict_metadata(verdict: Verdict) -> dict:
    champion = verdict.champion
    return {
        # Applied by onnx_model once the export passes parity: the champion is a .pt + .onnx pair.
        "verdict": "promote" if verdict.promote else "keep as challenger",
        "decision": verdict.reason,
        "test_mAP50": verdict.challenger.map50,
        "test_mAP50-95": verdict.challenger.map50_95,
        "test_images": verdict.challenger.images,
        "champion_before": verdict.champion_partition or "none",
        "champion_test_mAP50-95": champion.map50_95 if champion else "not evaluated",
        "champion_test_mAP50": champion.map50 if champion else "not evaluated",
        "promotion_tolerance": verdict.tolerance,
    }


def _metadata(result: TrainResult, params: TrainParams, manifest: dict) -> dict:
    records = [
        TableRecord(
            {"slot": r["slot"], "class": r["name"], "ap50": r["ap50"], "ap50_95": r["ap50_95"]}
        )
        for r in result.per_class
    ]
    return {
        "path": MetadataValue.path(str(result.run_dir)),
        "weights": MetadataValue.path(str(result.best)),
        "mAP50": result.map50,
        "mAP50-95": result.map50_95,
        "precision": result.precision,
        "recall": result.recall,
        "ap_by_class": MetadataValue.table(records, schema=_AP_SCHEMA),
        "epochs": result.epochs_completed,
        "training_start": result.start,
        "training_start_reason": result.start_reason,
        "resumed_after_epoch": result.resumed_from_epoch or 0,
        "wall_time_s": result.wall_seconds,
        "device": result.device,
        "seed": params.seed,
        "hyperparameters": MetadataValue.json(result.hyperparameters()),
        "versions": MetadataValue.json(result.versions),
        "dataset_partition": manifest["partition"],
        "dataset_data_version": manifest["data_version"],
        "dataset_images": MetadataValue.json(manifest["images"]),
    }
