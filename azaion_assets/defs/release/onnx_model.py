"""Asset ``onnx_model``: the NMS-free ONNX export of the day's model, its parity check, and the
champion gate.

The export is staged, checked against PyTorch (a blocking check) and only then moved into place with
a record of its sha256 (``lib.evaluation.export``): an export that disagrees is never installed,
never published, and stops anything downstream. The gate then judges what ships: this ONNX file
against the champion's ``azaion.onnx``, both through ONNX Runtime with the project's preprocessing,
on the day's test split (``lib.evaluation.champion_gate``). A winner is promoted here, as a pair
(``models/azaion.pt`` and ``models/azaion.onnx``); a challenger's export stays in its dated folder,
ready if an operator promotes it.
"""

import json
import time
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from azaion_assets.defs.instance_facts import TRAINING_RECORD
from azaion_assets.defs.pictures import gallery_entries
from azaion_assets.defs.release.gate_metadata import gate_metadata
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.champion.card import build_card, embed_card
from azaion_assets.lib.champion.files import held_partition, publish_lock
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.fields import IMGSZ_STRIDE, Scope
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.dataset.formed_dataset import read_manifest, split_images
from azaion_assets.lib.evaluation.champion_gate import (
    Verdict,
    evaluate_frames,
    judge,
    write_evaluation,
)
from azaion_assets.lib.evaluation.export import install_export, staged_export
from azaion_assets.lib.evaluation.frame_errors import rule
from azaion_assets.lib.evaluation.gallery import GALLERY_FILES, LEGEND, gate_pictures
from azaion_assets.lib.evaluation.onnx_eval import Scored
from azaion_assets.lib.evaluation.parity import check_parity
from azaion_assets.lib.fsio.digest import sha256
from azaion_assets.lib.labels.classes import load_classes, slot_names
from azaion_assets.lib.training.offline import prepare_ultralytics

PARITY_CHECK = "onnx_parity"


class ExportConfig(Config):
    """Per-run override from the launchpad; unset, the size follows the model's training."""

    imgsz: int | None = None


def onnx_model(
    context: AssetExecutionContext, config: ExportConfig, azaion_settings: AzaionSettingsResource
) -> MaterializeResult:
    settings = azaion_settings.load(Scope.TRAINING)
    tree = azaion_settings.tree()
    partition = context.partition_key
    model_dir = tree.model_dir(partition)
    weights = model_dir / "weights" / "best.pt"
    if not weights.is_file():
        raise FileNotFoundError(f"no trained model for {partition}: {weights} is missing")
    prepare_ultralytics(settings.runtime_dir)
    sizes = _export_sizes(config, settings, model_dir)
    images = split_images(tree.dataset_dir(partition), "valid")[: settings.export_parity_images]
    names = slot_names(load_classes(tree.classes_file))
    started = time.monotonic()
    with staged_export(weights, sizes["imgsz"]) as staged:
        export_s = round(time.monotonic() - started, 2)
        # The card goes into the file before parity: the bytes checked are the bytes shipped.
        card = build_card(
            staged,
            slot_names=names,
            training_imgsz=sizes["training_imgsz"],
            dataset_partition=read_manifest(tree.dataset_dir(partition))["partition"],
            score_threshold=settings.export_score_threshold,
            weights_sha256=sha256(weights),
        )
        embed_card(staged, card)
        parity = check_parity(
            weights,
            staged,
            images,
            conf=settings.export_parity_conf,
            score_tol=settings.export_parity_score_tol,
            min_iou=settings.export_parity_iou,
            min_boxes=settings.export_parity_min_boxes,
            top_k=settings.export_parity_top_k,
        )
        context.log.info(f"parity {parity.as_dict()}")
        record = None
        if parity.passed:
            with publish_lock(tree.models):  # a promotion reads the export under this lock
                record = install_export(staged, weights, parity, extra=sizes)
    check = AssetCheckResult(
        check_name=PARITY_CHECK,
        passed=parity.passed,
        metadata={k: v for k, v in parity.as_dict().items() if k != "passed"},
    )
    # One JSON block: these describe the export; plotted per day they would drown the mAP.
    export = {
        "imgsz": parity.imgsz,  # read back from the exported file
        **{k: v for k, v in sizes.items() if k != "imgsz"},
        "export_s": export_s,
        "parity_compared": parity.compared,
        "onnx_latency_ms": parity.onnx_ms,
        "torch_latency_ms": parity.torch_ms,
    }
    export_meta = {"parity": MetadataValue.json(parity.as_dict())}
    if record is None:
        context.log.error(
            "ONNX export disagrees with PyTorch: not installed, the champion stays as it was"
        )
        failed = {"export": MetadataValue.json(export), "installed": False}
        return MaterializeResult(metadata={**export_meta, **failed}, check_results=[check])
    onnx_path = Path(record["onnx"])
    verdict, challenger, champion = _judge(tree, partition, onnx_path, names, settings)
    write_evaluation(model_dir, verdict)  # the champion step applies it
    context.log.info(verdict.reason)
    pictures = _pictures(model_dir, challenger, champion, names, settings)
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(onnx_path)),
            "model_card": MetadataValue.json(card),
            "sha256": record["onnx_sha256"],
            "weights_sha256": record["weights_sha256"],
            "inputs": MetadataValue.json(record["input"]),
            "outputs": MetadataValue.json(record["output"]),
            "export": MetadataValue.json({**export, "size_bytes": onnx_path.stat().st_size}),
            **export_meta,
            **gate_metadata(verdict),
            **pictures,
            "installed": True,
        },
        check_results=[check],
    )


def build_onnx_model(days: DailyPartitionsDefinition) -> AssetsDefinition:
    return asset(
        partitions_def=days,
        deps=["model"],
        group_name="release",
        kinds={"onnx"},
        check_specs=[
            AssetCheckSpec(
                PARITY_CHECK,
                asset="onnx_model",
                blocking=True,
                partitions_def=days,
                description="ONNX Runtime agrees with PyTorch on validation images",
            )
        ],
        description=(
            "End-to-end ONNX export (1x300x6: x1,y1,x2,y2,score,class) of the day's model; the "
            "champion gate scores this file against the champion's on the test split"
        ),
    )(onnx_model)


def _export_sizes(config: ExportConfig, settings: Settings, model_dir: Path) -> dict:
    """The export size (launchpad, else the training's own launchpad size, else
    EXPORT_ONNX_IMGSZ) and how it relates to the size the model was trained at."""
    path = model_dir / TRAINING_RECORD
    training = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    trained = training.get("imgsz")
    if config.imgsz is not None:
        if config.imgsz < IMGSZ_STRIDE or config.imgsz % IMGSZ_STRIDE:
            raise Failure(
                f"launchpad imgsz={config.imgsz}: must be a positive multiple of {IMGSZ_STRIDE}",
                allow_retries=False,
            )
        imgsz, source = config.imgsz, "launchpad"
    elif training.get("imgsz_from") == "launchpad" and trained is not None:
        imgsz, source = int(trained), "the training's launchpad imgsz"
    else:
        imgsz, source = settings.export_onnx_imgsz, "EXPORT_ONNX_IMGSZ"
    mismatch = (
        f"exported at {imgsz}, trained at {trained}"
        if trained is not None and trained != imgsz
        else "none"
    )
    return {
        "imgsz": imgsz,
        "imgsz_from": source,
        "training_imgsz": trained or settings.training_imgsz,  # a model trained before the record
        "size_mismatch": mismatch,
    }


def _judge(
    tree: DataTree, partition: str, onnx_path: Path, names: dict[int, str], settings: Settings
) -> tuple[Verdict, Scored, Scored | None]:
    """Score the challenger's and the champion's ONNX files on the new test split (each frame
    kept as the edge shows it, for the pictures)."""
    dataset_dir = tree.dataset_dir(partition)
    threshold = settings.export_score_threshold
    challenger = evaluate_frames(onnx_path, dataset_dir, names, threshold)
    held = held_partition(tree.champion)
    champion, error = None, None
    if held is not None:
        held_onnx = held_partition(tree.champion_onnx)
        try:
            if held_onnx != held:
                raise ValueError(f"{tree.champion_onnx.name} holds {held_onnx}, not {held}")
            champion = evaluate_frames(tree.champion_onnx, dataset_dir, names, threshold)
        except Exception as exc:  # a champion of other classes, a missing or damaged file
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
    verdict = judge(
        challenger.score,
        champion.score if champion else None,
        held,
        settings.retrain_promotion_tolerance,
        floor=settings.retrain_min_test_map50_95,
        champion_error=error,
    )
    return verdict, challenger, champion


def _pictures(
    model_dir: Path,
    challenger: Scored,
    champion: Scored | None,
    names: dict[int, str],
    settings: Settings,
) -> dict:
    """Curves, confusion and the gallery on the page and in ``report/``; the frames the rule
    picked are listed too. Pictures that cannot be drawn say why: they never fail the gate."""
    if not settings.pictures_budget_bytes:
        return {}
    try:
        shown = gate_pictures(
            challenger,
            champion,
            names,
            settings.pictures_gallery_size,
            settings.pictures_thumbnail_width,
        )
    except (OSError, ValueError) as exc:
        return {"pictures": MetadataValue.md(f"*No pictures: {exc}*")}
    which = "differ_most" if champion is not None else "worst"
    budget = settings.pictures_budget_bytes
    return gallery_entries(
        "pictures",
        model_dir,
        shown,
        rule(which),
        challenger.threshold,
        LEGEND,
        budget,
        GALLERY_FILES,
    )
