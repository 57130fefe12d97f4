"""``champion``: the model in production, ``models/azaion.pt`` (and its ``azaion.onnx``).

It is not computed by a step of its own: ``model`` judges a challenger against it (see
``core.champion``), ``onnx_model`` promotes a winner once its export passes parity, and an
operator can promote any exported partition with the ``promote_model`` job. Either way a
materialisation of ``champion`` records which partition now serves, with its scores, so the
asset's page in the UI always answers "which model is live".
"""

from typing import Any

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    Config,
    Failure,
    OpExecutionContext,
    job,
    op,
)

from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.evaluation.champion_gate import NotPromotable, read_evaluation
from azaion_assets.lib.evaluation.champion_gate import promote as promote_pair

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


@op(description="Put a trained, exported partition's model in production, whatever its score")
def promote(
    context: OpExecutionContext, config: PromoteConfig, settings: AzaionSettingsResource
) -> None:
    tree = settings.tree()
    how = "manual"
    extra = {"promotion": how, "reason": config.reason, "run_id": context.run_id}
    try:
        promote_pair(tree, config.partition, extra, force=True)
    except NotPromotable as exc:
        raise Failure(str(exc), allow_retries=False) from None
    context.log.info(f"{config.partition}: azaion.pt and azaion.onnx published")
    evaluation = read_evaluation(tree.model_dir(config.partition)) or {}
    challenger = evaluation.get("challenger") or {}
    detail = {
        "reason": config.reason or "(none given)",
        "test_mAP50-95": challenger.get("map50_95", "not evaluated"),
    }
    context.log_event(champion_event(config.partition, how, detail))


@job(description="Manual promotion: make a trained partition's model the champion")
def promote_model() -> None:
    promote()
