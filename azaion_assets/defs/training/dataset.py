"""Asset ``dataset``: the dated training set ``datasets/azaion-YYYY-MM-DD/``, and its checks.

A dataset is formed from every validated annotation in ``data/`` at the time of the run, so it
depends on all annotation partitions. Its data version is a digest of the source snapshot; the
model trained on it records that version, which is how lineage reaches from a model back to the
exact annotations it saw.

The split keeps the frames of one video together and never moves a recorded annotation (see
``lib/dataset/split_record.py``); the metadata counts videos and frames per split, and a check
verifies that no video has frames in both train and test.
"""

from dagster import (
    AllPartitionMapping,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
    asset_check,
)

from azaion_assets.defs.pictures import show
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.dataset.dataset_sheet import SHEET_FILES, SHEET_RULE, dataset_pictures
from azaion_assets.lib.dataset.formed_dataset import DatasetReport, split_images
from azaion_assets.lib.dataset.forming import form_dataset
from azaion_assets.lib.dataset.split_record import tally_dataset
from azaion_assets.lib.dataset.split_stats import SourceStats
from azaion_assets.lib.dataset.video_split import SPLITS
from azaion_assets.lib.labels.classes import load_classes, slot_names
from azaion_assets.lib.labels.yolo_format import LabelError, parse_label
from azaion_assets.lib.text import plural

_SAMPLE = 20  # corrupted names listed in the run log and metadata
SHEET_FRAMES = 4  # frames per split on the contact sheets (fewer if PICTURES_GALLERY_SIZE is)

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


_SOURCE_SCHEMA = TableSchema(
    columns=[
        TableColumn("split", "string"),
        TableColumn("videos", "int", description="a frame without a known video counts as one"),
        TableColumn("frames", "int"),
        TableColumn("without_video", "int", description="frames without a known video"),
    ]
)


def source_metadata(stats: SourceStats | None) -> dict:
    """Videos and frames per split, and the frames kept in an earlier split (grandfathered)."""
    if stats is None:
        return {}
    rows = [
        TableRecord(
            {
                "split": s,
                "videos": stats.videos[s],
                "frames": stats.frames[s],
                "without_video": stats.unsourced[s],
            }
        )
        for s in SPLITS
    ]
    return {
        "videos_by_split": MetadataValue.table(rows, schema=_SOURCE_SCHEMA),
        **{f"videos_{s}": stats.videos[s] for s in SPLITS},
        **{f"frames_{s}": stats.frames[s] for s in SPLITS},
        "grandfathered": stats.grandfathered,
        "videos_across_train_and_test": len(stats.straddling),
    }


def _sample(items: dict[str, str]) -> str:
    lines = [f"- `{name}`: {reason}" for name, reason in list(items.items())[:_SAMPLE]]
    more = len(items) - _SAMPLE
    return "\n".join(lines + ([f"- … and {more} more"] if more > 0 else [])) or "none"


def dataset(
    context: AssetExecutionContext, azaion_settings: AzaionSettingsResource
) -> MaterializeResult:
    settings = azaion_settings.load(Scope.TRAINING)
    tree = azaion_settings.tree()
    names = slot_names(load_classes(tree.classes_file))
    report = form_dataset(tree, context.partition_key, settings.split_percentages, names)
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
            "split": settings.dataset_split,
            **source_metadata(report.sources),
            **_pictures(report, names, settings),
        },
        data_version=DataVersion(report.data_version),
    )


def _pictures(report: DatasetReport, names: dict[int, str], settings: Settings) -> dict:
    """Boxes per class per split, and a sheet of a few frames per split, on the page and in
    the dataset's ``report/``; pictures that cannot be drawn say why, never failing a formed
    dataset."""
    if not settings.pictures_budget_bytes:
        return {}
    per_split = min(SHEET_FRAMES, settings.pictures_gallery_size)
    try:
        shown = dataset_pictures(
            report.path, report.boxes, names, per_split, settings.pictures_thumbnail_width // 2
        )
    except (OSError, ValueError) as exc:
        return {"pictures": MetadataValue.md(f"*No pictures: {exc}*")}
    header = f"Contact sheets: {plural(per_split, 'frame')} per split, {SHEET_RULE}."
    budget = settings.pictures_budget_bytes
    return {"pictures": show(report.path, shown, budget, header, SHEET_FILES)}


def dataset_splits_non_empty(
    context: AssetCheckExecutionContext, azaion_settings: AzaionSettingsResource
) -> AssetCheckResult:
    """Training needs images in train and valid; an empty test split makes the evaluation moot."""
    root = azaion_settings.tree().dataset_dir(context.partition_key)
    counts = {split: len(split_images(root, split)) for split in SPLITS}
    empty = [split for split, n in counts.items() if n == 0]
    return AssetCheckResult(
        passed=not empty,
        metadata={**counts, "empty_splits": ", ".join(empty) or "none"},
        description=f"empty splits: {', '.join(empty)}" if empty else "all splits hold images",
    )


def dataset_labels_valid(
    context: AssetCheckExecutionContext, azaion_settings: AzaionSettingsResource
) -> AssetCheckResult:
    """Re-validate every label in the formed dataset, independently of the forming code path."""
    root = azaion_settings.tree().dataset_dir(context.partition_key)
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


def dataset_no_video_across_train_and_test(
    context: AssetCheckExecutionContext, azaion_settings: AzaionSettingsResource
) -> AssetCheckResult:
    """Frames of one video are near-identical: one in train and another in test make the test
    score optimistic. Reads the formed dataset and the split record, not the split rule. Frames
    kept in their split from before their video was known (grandfathered) are counted, not
    failed; a dataset whose splits disagree with the record fails."""
    tree = azaion_settings.tree()
    stats, unlike = tally_dataset(tree, tree.dataset_dir(context.partition_key))
    straddling = {video: "frames in train and test" for video in stats.straddling}
    passed = not straddling and not unlike
    if passed:
        description = "no video has frames in both train and test"
        if stats.grandfathered:
            description += f" but {plural(stats.grandfathered, 'grandfathered frame')}"
    else:
        description = (
            f"{plural(len(straddling), 'video')} in both train and test, "
            f"{plural(len(unlike), 'annotation')} not in their recorded split"
        )
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "videos_across_train_and_test": len(straddling),
            "videos_sample": MetadataValue.md(_sample(straddling)),
            "grandfathered_frames": stats.grandfathered,
            "videos_with_grandfathered_frames": stats.grandfathered_videos,
            "not_in_recorded_split": len(unlike),
            "not_in_recorded_split_sample": MetadataValue.md(_sample(unlike)),
            **{f"videos_{s}": stats.videos[s] for s in SPLITS},
        },
    )


def build_dataset(
    days: DailyPartitionsDefinition,
) -> tuple[AssetsDefinition, list[AssetChecksDefinition]]:
    """The asset and its blocking checks on ``days`` (a setting, so built at location load)."""
    asset_def = asset(
        partitions_def=days,
        deps=[AssetDep("annotations", partition_mapping=AllPartitionMapping())],
        group_name="training",
        kinds={"yolo", "dataset"},
        description=(
            "datasets/azaion-YYYY-MM-DD/: validated annotations split train/valid/test by "
            "DATASET_SPLIT (default 70/20/10) by source video; a recorded split never changes"
        ),
    )(dataset)
    checks = [
        asset_check(asset="dataset", blocking=True, partitions_def=days)(fn)
        for fn in (
            dataset_splits_non_empty,
            dataset_labels_valid,
            dataset_no_video_across_train_and_test,
        )
    ]
    return asset_def, checks
