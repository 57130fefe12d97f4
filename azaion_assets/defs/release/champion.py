"""``champion``: the model in production, ``models/azaion.pt`` and its ``azaion.onnx``.

A real asset, downstream of ``onnx_model``, so the graph shows which day's model is live and the
asset's page answers where its files are, their sha256, which dataset it came from and how it
scored against the champion before it. It materialises only when the champion changes (or an
operator asks it to record the files as they are), so its history is the history of promotions.

One step, three ways in, by its config and the run:
- in a ``retraining_job`` run it applies the day's verdict, which ``onnx_model`` judged on the
  shipped ONNX files (``champion_gate``); a challenger that lost leaves no materialisation;
- with ``partition`` set (the launchpad, or the ``promote_model`` job) it promotes that trained,
  exported day by hand, whatever its score, keeping ``reason`` in the record;
- otherwise it records the live pair as found (a refresh after a restore by hand, say).
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
)

from azaion_assets.defs.instance_facts import CHAMPION
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.champion.files import UNKNOWN, Held, held_file
from azaion_assets.lib.champion.promotion import NotPromotable, expected_champion, promote
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.evaluation.champion_gate import read_evaluation

PROMOTE_JOB = "promote_model"
_PARTITION_TAG = "dagster/partition"


class ChampionConfig(Config):
    """``partition``: promote this trained, exported day by hand, whatever its score.
    Empty: apply the retraining run's verdict, or record the live files as they are."""

    partition: str = ""
    reason: str = ""


@asset(
    deps=["onnx_model"],
    group_name="release",
    kinds={"pytorch", "onnx"},
    output_required=False,
    description=(
        "models/azaion.pt and azaion.onnx, the model in production. Materialised when a model "
        "is promoted: by its score in a retraining run, or by hand (launchpad: partition, "
        "reason)."
    ),
)
def champion(
    context: AssetExecutionContext, config: ChampionConfig, azaion_settings: AzaionSettingsResource
) -> Iterator[MaterializeResult]:
    tree = azaion_settings.tree()
    day = context.run.tags.get(_PARTITION_TAG)
    if config.partition:
        how, detail = "manual", config.reason or "(none given)"
        extra = {"promotion": how, "reason": detail, "run_id": context.run.run_id}
        _promote(context, tree, config.partition, extra, force=True)
    elif day is not None:
        evaluation = read_evaluation(tree.model_dir(day))
        if evaluation is None:
            context.log.info(f"{day} has no verdict: the champion stays as it was")
            return
        if not evaluation["promote"]:
            context.log.info(f"{day} stays a challenger: {evaluation['reason']}")
            return
        how, detail = "automatic", evaluation["reason"]
        extra = {"promotion": how, "verdict": detail}
        if not _promote(context, tree, day, extra, expected=expected_champion(evaluation)):
            return
    else:
        how, detail = "recorded as found", "the live files, recorded on request"
        if not tree.champion.is_file():
            raise Failure(f"no champion yet: {tree.champion} is missing", allow_retries=False)
    metadata = champion_metadata(tree, how, detail, context.run.run_id)
    context.log.info(f"champion: {metadata['partition']} ({how})")
    yield MaterializeResult(metadata=metadata)


def _promote(
    context: AssetExecutionContext, tree: DataTree, partition: str, extra: dict, **kwargs: Any
) -> bool:
    try:
        published = promote(tree, partition, extra, **kwargs)
    except NotPromotable as exc:
        raise Failure(str(exc), allow_retries=False) from None
    context.log.info(f"{partition}: {published.reason}")  # or why not: the champion changed
    return published.published


def champion_metadata(tree: DataTree, how: str, detail: str, run_id: str) -> dict[str, Any]:
    """Where the live pair is and what it is, read from the files themselves (each hashed
    once), and how it scored on its own day's test split against the champion it replaced
    (numbers only, so they plot)."""
    files = {"pt": tree.champion, "onnx": tree.champion_onnx}
    held = {label: held_file(path) for label, path in files.items()}
    partition = held["pt"].partition if held["pt"] is not None else "none"
    known = partition not in (UNKNOWN, "none")  # a file without a believable record says so
    meta: dict[str, Any] = {
        "partition": partition,
        "promotion": how,
        "reason": detail,
        "dataset": MetadataValue.path(str(tree.dataset_dir(partition))) if known else "unknown",
    }
    for label, path in files.items():
        meta.update(_file(label, path, held[label]))
    evaluation = read_evaluation(tree.model_dir(partition)) if known else None
    if evaluation is not None:
        challenger, before = evaluation["challenger"], evaluation.get("champion")
        meta["test_mAP50-95"] = challenger["map50_95"]
        meta["test_mAP50"] = challenger["map50"]
        meta["test_images"] = challenger["images"]
        meta["previous_champion"] = evaluation.get("champion_partition") or "none"
        if before is not None:
            meta["previous_test_mAP50-95"] = before["map50_95"]
            meta["previous_test_mAP50"] = before["map50"]
    meta["run_id"] = run_id
    return meta


def _file(label: str, path: Path, held: Held | None) -> dict[str, Any]:
    """The file as it is; its sidecar record is believed only if it names these bytes, and then
    says which day's they are (both files of the pair should name the same)."""
    if held is None:
        return {f"{label}_path": MetadataValue.path(str(path)), f"{label}_sha256": "missing"}
    vouched = held.partition != UNKNOWN
    return {
        f"{label}_path": MetadataValue.path(str(path)),
        f"{label}_sha256": held.sha256,
        f"{label}_bytes": path.stat().st_size,
        f"{label}_record": (
            f"matches the file ({held.partition})" if vouched else "does not match the file"
        ),
    }


promote_model = define_asset_job(
    PROMOTE_JOB,
    selection=AssetSelection.assets(CHAMPION).without_checks(),
    tags={"azaion/stage": "promote"},
    description="Manual promotion: make a trained, exported day's model the champion "
    "(config: ops.champion.config.partition and reason)",
)
