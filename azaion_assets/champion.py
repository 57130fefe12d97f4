"""``champion``: the model in production, ``models/azaion.pt`` (and its ``azaion.onnx``).

It is not computed by a step of its own: ``model`` promotes a challenger that scores at least as
well (see ``core.champion``), and an operator can promote any trained partition with the
``promote_model`` job. Either way a materialisation of ``champion`` records which partition now
serves, with its scores, so the asset's page in the UI always answers "which model is live".
"""

from typing import Any

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    Config,
    OpExecutionContext,
    job,
    op,
)

from azaion_assets.core.champion import read_evaluation
from azaion_assets.core.datatree import DataTree
from azaion_assets.core.export import read_export_record
from azaion_assets.core.publish import Published, publish
from azaion_assets.resources import AzaionSettingsResource

CHAMPION = AssetKey("champion")

champion = AssetSpec(
    CHAMPION,
    deps=["model", "onnx_model"],
    group_name="training",
    kinds={"pytorch"},
    description=(
        "models/azaion.pt (+ azaion.onnx): the model in production. Materialised when a model "
        "is promoted, automatically (score) or by the promote_model job."
    ),
)


def champion_event(partition: str, how: str, detail: dict[str, Any]) -> AssetMaterialization:
    return AssetMaterialization(
        CHAMPION,
        description=f"models/azaion.pt is now the model of {partition} ({how})",
        metadata={"partition": partition, "promotion": how, **detail},
    )


class PromoteConfig(Config):
    """Which trained partition to put in production, and why (kept in the record)."""

    partition: str
    reason: str = ""


def promote_partition(tree: DataTree, partition: str, extra: dict[str, Any]) -> list[Published]:
    """Publish a partition's ``.pt`` and, if its export passed parity, its ``.onnx``; forced."""
    weights = tree.model_dir(partition) / "weights" / "best.pt"
    if not weights.is_file():
        raise FileNotFoundError(f"no trained model for {partition}: {weights} is missing")
    done = [publish(weights, tree.champion, partition, extra=extra, force=True)]
    export = read_export_record(tree.model_dir(partition))
    if export is not None and export["parity_passed"]:
        onnx = weights.with_suffix(".onnx")
        done.append(publish(onnx, tree.champion_onnx, partition, extra=extra, force=True))
    return done


@op(description="Put a trained partition's model in production, whatever its score")
def promote(
    context: OpExecutionContext, config: PromoteConfig, settings: AzaionSettingsResource
) -> None:
    tree = settings.tree()
    how = "manual"
    extra = {"promotion": how, "reason": config.reason, "run_id": context.run_id}
    published = promote_partition(tree, config.partition, extra)
    onnx = "published" if len(published) == 2 else "not exported with passing parity yet"
    context.log.info(f"{config.partition}: azaion.pt published; azaion.onnx {onnx}")
    evaluation = read_evaluation(tree.model_dir(config.partition)) or {}
    challenger = evaluation.get("challenger") or {}
    context.log_event(
        champion_event(
            config.partition,
            how,
            {
                "reason": config.reason or "(none given)",
                "test_mAP50-95": challenger.get("map50_95", "not evaluated"),
                "onnx": onnx,
            },
        )
    )


@job(description="Manual promotion: make a trained partition's model the champion")
def promote_model() -> None:
    promote()
