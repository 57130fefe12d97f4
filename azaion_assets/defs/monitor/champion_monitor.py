"""``champion_monitor``: how the live model does on data it has never seen.

New validated annotations are today's footage, labelled: the best signal of whether the
champion still holds up on new terrain or in a new season. This scores the champion as shipped
(``azaion.onnx`` through ONNX Runtime, with the project's preprocessing, as the gate scores it)
on the annotations validated since its dataset was formed, a fair sample per source video
(``lib/evaluation/new_data``), and records the figures next to the champion's own test score,
overall, per weather mode and per class, as numbers the asset's plots follow over time.
``retraining_sensor`` retrains when the gap grows past RETRAIN_DEGRADATION_MARGIN.

It holds the ``gpu`` pool like a training step, so it never scores on the GPU while a training
runs; ``champion_monitor_sensor`` starts it once enough new data has arrived.
"""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
    define_asset_job,
)

from azaion_assets.defs.instance_facts import (
    CHAMPION_ENTRY,
    GPU_POOL,
    MONITOR,
    NEW_IMAGES,
    NEW_SCORE,
    TEST_SCORE,
)
from azaion_assets.defs.pictures import carried, drawn_marks, gallery_entries
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.champion.files import UNKNOWN, held_file, publish_lock
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.evaluation.champion_gate import read_evaluation
from azaion_assets.lib.evaluation.frame_errors import rule
from azaion_assets.lib.evaluation.gallery import MONITOR_FILES, MONITOR_LEGEND, monitor_pictures
from azaion_assets.lib.evaluation.new_data import (
    by_mode,
    new_annotations,
    sample_by_video,
    source_positions,
)
from azaion_assets.lib.evaluation.onnx_eval import Score, Scored, score_frames
from azaion_assets.lib.fsio.digest import sha256
from azaion_assets.lib.fsio.linking import KINDS, link_slice
from azaion_assets.lib.ingest.day_totals import weather_mode
from azaion_assets.lib.labels.classes import load_classes, slot_names
from azaion_assets.lib.training.offline import prepare_ultralytics

MONITOR_JOB = "champion_monitor_job"
NEW = "new"  # the folder the scored pairs are linked into
_CLASSES_SCHEMA = TableSchema(
    columns=[
        TableColumn("slot", "int"),
        TableColumn("class", "string"),
        TableColumn("mode", "string"),
        TableColumn("new_ap50_95", "float", description="on the new data"),
        TableColumn("test_ap50_95", "float", description="on its own test split (-1: absent)"),
    ]
)


@asset(
    deps=["champion"],
    group_name="release",
    kinds={"onnx"},
    pool=GPU_POOL,
    output_required=False,
    description=(
        "The champion's azaion.onnx scored on validated annotations newer than its dataset "
        "(at most MONITOR_MAX_IMAGES_PER_VIDEO per video), next to its own test score, per "
        "weather mode and class; retraining_sensor retrains when it falls too far behind"
    ),
)
def champion_monitor(
    context: AssetExecutionContext, azaion_settings: AzaionSettingsResource
) -> Iterator[MaterializeResult]:
    settings = azaion_settings.load(Scope.TRAINING)
    tree = azaion_settings.tree()
    settings.runtime_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="champion-", dir=settings.runtime_dir) as tmp:
        onnx, champion = _stable_copy(tree, Path(tmp))
        evaluation = read_evaluation(tree.model_dir(champion))
        dataset_dir = tree.dataset_dir(champion)
        if evaluation is None or not dataset_dir.is_dir():
            raise Failure(
                f"champion {champion} has no evaluation.json or dataset folder: nothing to "
                "compare with (was it promoted from another data tree?)",
                allow_retries=False,
            )
        new = new_annotations(tree.data, dataset_dir)
        sample = sample_by_video(
            tree, new, settings.monitor_max_images_per_video, settings.monitor_max_images
        )
        if not sample.images:
            context.log.info(f"no annotation validated since dataset {champion}: nothing to score")
            return
        context.log.info(
            f"scoring champion {champion} on {len(sample.images)} of {sample.candidates} new "
            f"images from {sample.videos} videos"
        )
        images = _snapshot(tree, sample.images, Path(tmp))
        if not images:
            context.log.info("every sampled annotation was deleted meanwhile: nothing to score")
            return
        prepare_ultralytics(settings.runtime_dir)
        names = slot_names(load_classes(tree.classes_file))
        threshold = settings.export_score_threshold
        scored = score_frames(onnx, images, Path(tmp) / NEW / "labels", names, threshold)
        every = settings.pictures_every_minutes * 60
        draw_now = "set it to 0 to draw them at every score"
        pictures = carried(context.instance, MONITOR, None, every, "worst_frames", draw_now)
        if pictures is None:  # due: drawn before the snapshot in tmp goes
            pictures = _pictures(tree, champion, scored, names, settings, context.run_id)
    score = scored.score
    test = evaluation["challenger"]  # the champion's own score when it was judged
    context.log.info(
        f"champion {champion}: mAP50-95 {score.map50_95:.4f} on new data, "
        f"{test['map50_95']:.4f} on its test split"
    )
    yield MaterializeResult(metadata=_metadata(champion, score, test, sample) | pictures)


def _pictures(
    tree: DataTree,
    champion: str,
    scored: Scored,
    names: dict[int, str],
    settings: Settings,
    run_id: str,
) -> dict[str, Any]:
    """The new frames the champion does worst on, on the page and in its model's
    ``report/``; pictures that cannot be drawn say why, never failing the score."""
    if not settings.pictures_budget_bytes:
        return {}
    try:
        shown = monitor_pictures(
            scored,
            names,
            settings.pictures_gallery_size,
            settings.pictures_thumbnail_width,
            source_positions(tree.root),
        )
    except (OSError, ValueError) as exc:
        return {"worst_frames": MetadataValue.md(f"*No pictures: {exc}*")}
    folder, budget = tree.model_dir(champion), settings.pictures_budget_bytes
    return {
        **gallery_entries(
            "worst_frames",
            folder,
            shown,
            rule("worst"),
            scored.threshold,
            MONITOR_LEGEND,
            budget,
            MONITOR_FILES,
        ),
        **drawn_marks(run_id),
    }


def _stable_copy(tree: DataTree, into: Path) -> tuple[Path, str]:
    """The champion's ONNX, copied under the publish lock (a promotion cannot swap it half
    way), and the partition its record vouches for."""
    with publish_lock(tree.models):
        held = held_file(tree.champion_onnx)
        if held is None or held.partition == UNKNOWN:
            why = "missing" if held is None else "not the file its record names"
            raise Failure(f"no champion to score: {tree.champion_onnx} is {why}")
        copy = into / tree.champion_onnx.name
        shutil.copyfile(tree.champion_onnx, copy)
    if sha256(copy) != held.sha256:
        raise Failure("the champion changed while it was copied, outside the publish lock")
    return copy, held.partition


def _snapshot(tree: DataTree, images: list[Path], into: Path) -> list[Path]:
    """Each image with its label, linked into ``into/new/`` as they are now (``link_slice``,
    as forming links a dataset): the ingest goes on meanwhile, and may replace a pair (an edit)
    or move it away (a delete) while it is scored. The pairs that vanished are left out."""
    for kind in KINDS:
        (into / NEW / kind).mkdir(parents=True)
    links = [(p.stem, p.name, f"{p.stem}.txt", NEW) for p in images]
    vanished = set(link_slice(tree.data.images, tree.data.labels, into, links))
    return [into / NEW / "images" / p.name for p in images if p.stem not in vanished]


def _metadata(champion: str, score: Score, test: dict, sample) -> dict[str, Any]:
    test_by_class = {int(r["slot"]): r for r in test.get("per_class", [])}
    new_modes, test_modes = by_mode(score.per_class), by_mode(test.get("per_class", []))
    gap = round(test["map50_95"] - score.map50_95, 4)
    meta: dict[str, Any] = {
        "summary": MetadataValue.md(
            f"Champion **{champion}** scores mAP50-95 **{score.map50_95:.4f}** on "
            f"{score.images} new images from {sample.videos} videos "
            f"({sample.candidates} new annotations), against **{test['map50_95']:.4f}** on "
            f"its own test split: {gap:+.4f} behind."
        ),
        CHAMPION_ENTRY: champion,
        NEW_SCORE: score.map50_95,
        "new_data_mAP50": score.map50,
        TEST_SCORE: float(test["map50_95"]),
        "champion_test_mAP50": float(test["map50"]),
        "gap_mAP50-95": gap,
        NEW_IMAGES: score.images,
        "new_videos": sample.videos,
        "new_annotations": sample.candidates,
    }
    for mode, value in new_modes.items():
        meta[f"new_data_mAP50-95 {mode}"] = value
        if mode in test_modes:
            meta[f"champion_test_mAP50-95 {mode}"] = test_modes[mode]
    rows = []
    for r in score.per_class:
        slot = int(r["slot"])
        meta[f"new_data_AP50-95 {r['name']}"] = r["ap50_95"]
        before = test_by_class.get(slot, {}).get("ap50_95", -1.0)
        rows.append(
            TableRecord(
                {
                    "slot": slot,
                    "class": r["name"],
                    "mode": weather_mode(slot),
                    "new_ap50_95": r["ap50_95"],
                    "test_ap50_95": before,
                }
            )
        )
    meta["by_class"] = MetadataValue.table(rows, schema=_CLASSES_SCHEMA)
    return meta


champion_monitor_job = define_asset_job(
    MONITOR_JOB,
    selection=AssetSelection.assets(MONITOR),
    tags={"azaion/stage": "monitor"},
    description="Score the champion on annotations validated since its dataset",
)
