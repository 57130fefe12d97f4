"""Asset ``onnx_model``: the NMS-free ONNX export of the day's model, with a parity check.

The parity check is blocking: an export that disagrees with PyTorch is recorded but never
published and stops anything downstream. This step also applies the model step's verdict: a
model that won against the champion is promoted here, as a pair (``models/azaion.pt`` and
``models/azaion.onnx``), once its export is known to be faithful. A challenger's export stays
in its dated folder, ready if an operator promotes it.
"""

import time

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from azaion_assets.champion import champion_event
from azaion_assets.core.champion import expected_champion, promote, read_evaluation
from azaion_assets.core.datatree import DataTree
from azaion_assets.core.export import (
    check_parity,
    describe_onnx,
    export_onnx,
    write_export_record,
)
from azaion_assets.core.offline import prepare_ultralytics
from azaion_assets.core.publish import held_partition
from azaion_assets.model import model
from azaion_assets.partitions import daily_partitions
from azaion_assets.resources import AzaionSettingsResource

PARITY_CHECK = "onnx_parity"


@asset(
    partitions_def=daily_partitions,
    deps=[model],
    group_name="training",
    kinds={"onnx"},
    check_specs=[
        AssetCheckSpec(
            PARITY_CHECK,
            asset="onnx_model",
            blocking=True,
            partitions_def=daily_partitions,
            description="ONNX Runtime agrees with PyTorch on validation images",
        )
    ],
    description="End-to-end ONNX export (1x300x6: x1,y1,x2,y2,score,class) of the day's model",
)
def onnx_model(
    context: AssetExecutionContext, settings: AzaionSettingsResource
) -> MaterializeResult:
    s = settings.load()
    tree = settings.tree()
    partition = context.partition_key
    weights = tree.model_dir(partition) / "weights" / "best.pt"
    if not weights.is_file():
        raise FileNotFoundError(f"no trained model for {partition}: {weights} is missing")
    prepare_ultralytics(s.runtime_dir)
    started = time.monotonic()
    onnx_path = export_onnx(weights, s.export_onnx_imgsz)
    export_s = round(time.monotonic() - started, 2)
    info = describe_onnx(onnx_path)
    valid = tree.dataset_dir(partition) / "valid" / "images"
    images = sorted(p for p in valid.iterdir() if not p.name.startswith("."))[
        : s.export_parity_images
    ]
    parity = check_parity(
        weights,
        onnx_path,
        images,
        s.export_onnx_imgsz,
        conf=s.export_parity_conf,
        score_tol=s.export_parity_score_tol,
        min_iou=s.export_parity_iou,
    )
    context.log.info(f"parity {parity.as_dict()}")
    write_export_record(tree.model_dir(partition), onnx_path, parity)
    promoted = _promote(context, tree, partition, parity.passed)
    held = held_partition(tree.champion)
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(onnx_path)),
            "size_bytes": onnx_path.stat().st_size,
            "opset": info["opset"],
            "inputs": MetadataValue.json(info["inputs"]),
            "outputs": MetadataValue.json(info["outputs"]),
            "imgsz": s.export_onnx_imgsz,
            "export_s": export_s,
            "parity": MetadataValue.json(parity.as_dict()),
            "onnx_latency_ms": parity.onnx_ms,
            "torch_latency_ms": parity.torch_ms,
            "promoted": promoted,
            "champion": held or "none",
            "champion_path": MetadataValue.path(str(tree.champion_onnx)),
        },
        check_results=[
            AssetCheckResult(
                check_name=PARITY_CHECK,
                passed=parity.passed,
                metadata={k: v for k, v in parity.as_dict().items() if k != "passed"},
            )
        ],
    )


def _promote(
    context: AssetExecutionContext, tree: DataTree, partition: str, parity_passed: bool
) -> bool:
    """Apply the model step's verdict now that the export is known to be faithful."""
    evaluation = read_evaluation(tree.model_dir(partition))
    if not parity_passed:
        context.log.error("ONNX export disagrees with PyTorch; the champion stays as it was")
        return False
    if evaluation is None or not evaluation["promote"]:
        context.log.info(f"{partition} is a challenger: the champion stays as it was")
        return False
    extra = {"promotion": "automatic", "verdict": evaluation["reason"]}
    published = promote(tree, partition, extra, expected=expected_champion(evaluation))
    context.log.info(f"champion: {published.reason}")
    if published.published:
        score = evaluation["challenger"]["map50_95"]
        detail = {"test_mAP50-95": score, "reason": evaluation["reason"]}
        context.log_event(champion_event(partition, "automatic", detail))
    return published.published
