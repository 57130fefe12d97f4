"""Asset ``onnx_model``: the NMS-free ONNX export of the day's model, with a parity check.

The parity check is blocking: an export that disagrees with PyTorch is recorded but never
published as ``models/azaion.onnx`` and stops anything downstream. The ONNX file follows the
champion: it is published only when the day's model is the one in ``models/azaion.pt``; a
challenger's export stays in its dated folder, ready if an operator promotes it.
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

from azaion_assets.core.champion import champion_partition
from azaion_assets.core.export import (
    check_parity,
    describe_onnx,
    export_onnx,
    write_export_record,
)
from azaion_assets.core.offline import prepare_ultralytics
from azaion_assets.core.publish import publish
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
    held = champion_partition(tree.champion)
    published = None
    if not parity.passed:
        context.log.error(
            f"ONNX export disagrees with PyTorch; {tree.champion_onnx} left as it was"
        )
    elif held != partition:
        context.log.info(
            f"{partition} is not the champion (azaion.pt holds {held or 'nothing'}): "
            f"{tree.champion_onnx.name} left as it was"
        )
    else:
        published = publish(onnx_path, tree.champion_onnx, partition)
        context.log.info(f"{tree.champion_onnx.name}: {published.reason}")
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
            "published": bool(published and published.published),
            "champion": held or "none",
            "published_path": MetadataValue.path(str(tree.champion_onnx)),
        },
        check_results=[
            AssetCheckResult(
                check_name=PARITY_CHECK,
                passed=parity.passed,
                metadata={k: v for k, v in parity.as_dict().items() if k != "passed"},
            )
        ],
    )
