"""The champion gate's verdict as ``onnx_model`` metadata: figures, decision, and a per-class
table of challenger and champion side by side, all measured on the shipped ONNX files."""

from typing import Any

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from azaion_assets.lib.evaluation.champion_gate import Verdict

_SIDE_BY_SIDE = TableSchema(
    columns=[
        TableColumn("slot", "int"),
        TableColumn("class", "string"),
        TableColumn("challenger_ap50_95", "float"),
        TableColumn("champion_ap50_95", "float", description="empty: not scored"),
        TableColumn("challenger_ap50", "float"),
        TableColumn("champion_ap50", "float", description="empty: not scored"),
    ]
)


def side_by_side(verdict: Verdict) -> MetadataValue:
    ours = {r["slot"]: r for r in verdict.challenger.per_class}
    theirs = {r["slot"]: r for r in verdict.champion.per_class} if verdict.champion else {}
    records = []
    for slot in sorted(ours.keys() | theirs.keys()):
        a, b = ours.get(slot, {}), theirs.get(slot, {})
        row: dict[str, Any] = {"slot": slot, "class": a.get("name") or b.get("name")}
        for key in ("ap50_95", "ap50"):
            if key in a:
                row[f"challenger_{key}"] = a[key]
            if key in b:
                row[f"champion_{key}"] = b[key]
        records.append(TableRecord(row))
    return MetadataValue.table(records, schema=_SIDE_BY_SIDE)


def gate_metadata(verdict: Verdict) -> dict[str, Any]:
    """Numbers only where a trend across days means something (both models' mAP on the same
    test split, the split's size): the UI plots every numeric entry, so a missing champion
    leaves its entries out rather than writing text, and the rules go in one JSON block."""
    champion = verdict.champion
    scored = (
        {"champion_test_mAP50-95": champion.map50_95, "champion_test_mAP50": champion.map50}
        if champion is not None
        else {}
    )
    return {
        "verdict": "promote" if verdict.promote else "keep as challenger",
        "decision": verdict.reason,
        "test_mAP50": verdict.challenger.map50,
        "test_mAP50-95": verdict.challenger.map50_95,
        "test_images": verdict.challenger.images,
        "champion_before": verdict.champion_partition or "none",
        **scored,
        "ap_by_class": side_by_side(verdict),
        "gate": MetadataValue.json(
            {
                "scored_on": "the ONNX files as shipped (ONNX Runtime, project preprocessing), "
                "test split",
                "promotion_tolerance": verdict.tolerance,
                "quality_floor": verdict.floor,
                "champion_imgsz": champion.imgsz if champion is not None else None,
            }
        ),
    }
