"""Asset ``dataset``: the dated training set ``datasets/azaion-YYYY-MM-DD/``, and its checks.

A dataset is formed from every validated annotation in ``data/`` at the time of the run, so it
depends on all annotation partitions. Its data version is a digest of the source snapshot; the
model trained on it records that version, which is how lineage reaches from a model back to the
exact annotations it saw.
"""

from dagster import (
    AllPartitionMapping,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetDep,
    AssetExecutionContext,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
    asset_check,
)

from azaion_assets.annotations import annotations
from azaion_assets.core.classes import load_classes, slot_names
from azaion_assets.core.forming import DatasetReport, form_dataset, split_images
from azaion_assets.core.labels import LabelError, parse_label
from azaion_assets.core.split import SPLITS
from azaion_assets.partitions import daily_partitions
from azaion_assets.resources import AzaionSettingsResource

_SAMPLE = 20  # corrupted names listed in the run log and metadata

_CLASS_SCHEMA = TableSchema(
    columns=[
        TableColumn("slot", "int"),
        TableColumn("class", "string"),
        *(TableColumn(split, "int", description=f"boxes in {split}") for split in SPLITS),
    ]
)


def class_table(report: DatasetReport, names: dict[int, str]) -> MetadataValue:
    slots = sorted(set().union(*(report.boxes[s].keys() for s in SPLITS)))
    records = [
        TableRecord(
            {"slot": slot, "class": names[slot], **{s: report.boxes[s][slot] for s in SPLITS}}
        )
        for slot in slots
    ]
    return MetadataValue.table(records, schema=_CLASS_SCHEMA)


def _sample(items: dict[str, str]) -> str:
    lines = [f"- `{name}`: {reason}" for name, reason in list(items.items())[:_SAMPLE]]
    more = len(items) - _SAMPLE
    return "\n".join(lines + ([f"- … and {more} more"] if more > 0 else [])) or "none"


@asset(
    partitions_def=daily_partitions,
    deps=[AssetDep(annotations, partition_mapping=AllPartitionMapping())],
    group_name="training",
    kinds={"yolo", "dataset"},
    description=(
        "datasets/azaion-YYYY-MM-DD/: validated annotations split train/valid/test by "
        "DATASET_SPLIT (default 70/20/10), stable by name"
    ),
)
def dataset(context: AssetExecutionContext, settings: AzaionSettingsResource) -> MaterializeResult:
    config = settings.load()
    tree = settings.tree()
    names = slot_names(load_classes(tree.classes_file))
    report = form_dataset(tree, context.partition_key, config.split_percentages, names)
    for name, reason in list(report.corrupted.items())[:_SAMPLE]:
        context.log.warning(f"moved {name} to {tree.corrupted.root.name}/: {reason}")
    context.log.info(f"formed {report.path}: {report.images}, {len(report.corrupted)} corrupted")
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(report.path)),
            "images": sum(report.images.values()),
            **{f"images_{split}": report.images[split] for split in SPLITS},
            "boxes_by_class": class_table(report, names),
            "corrupted": len(report.corrupted),
            "corrupted_sample": MetadataValue.md(_sample(report.corrupted)),
            "unpaired": len(report.unpaired),
            "source_dir": MetadataValue.path(str(tree.data.root)),
            "source_names": report.source_names,
            "source_snapshot": report.data_version,
            "split": config.dataset_split,
        },
        data_version=DataVersion(report.data_version),
    )


@asset_check(asset=dataset, blocking=True, partitions_def=daily_partitions)
def dataset_splits_non_empty(
    context: AssetCheckExecutionContext, settings: AzaionSettingsResource
) -> AssetCheckResult:
    """Training needs images in train and valid; an empty test split makes the evaluation moot."""
    root = settings.tree().dataset_dir(context.partition_key)
    counts = {split: len(split_images(root, split)) for split in SPLITS}
    empty = [split for split, n in counts.items() if n == 0]
    return AssetCheckResult(
        passed=not empty,
        metadata={**counts, "empty_splits": ", ".join(empty) or "none"},
        description=f"empty splits: {', '.join(empty)}" if empty else "all splits hold images",
    )


@asset_check(asset=dataset, blocking=True, partitions_def=daily_partitions)
def dataset_labels_valid(
    context: AssetCheckExecutionContext, settings: AzaionSettingsResource
) -> AssetCheckResult:
    """Re-validate every label in the formed dataset, independently of the forming code path."""
    root = settings.tree().dataset_dir(context.partition_key)
    checked, invalid = 0, {}
    for split in SPLITS:
        for label in sorted((root / split / "labels").glob("*.txt")):
            checked += 1
            try:
                parse_label(label.read_text("utf-8"))
            except (LabelError, UnicodeDecodeError) as exc:
                invalid[f"{split}/{label.name}"] = str(exc)
    return AssetCheckResult(
        passed=checked > 0 and not invalid,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "labels_checked": checked,
            "invalid": len(invalid),
            "invalid_sample": MetadataValue.md(_sample(invalid)),
        },
    )
