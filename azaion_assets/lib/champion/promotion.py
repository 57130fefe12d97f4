"""Promotion: a partition's ``best.pt`` and its ONNX export become the champion pair.

The champion is always a pair, ``azaion.pt`` and the ``azaion.onnx`` exported from it, and only
an export whose record still vouches for its bytes is published. An automatic promotion applies
the verdict that ``evaluation.champion_gate`` wrote, against the champion it was judged with; an
operator's promotion (``force``) is also how a champion is rolled back: promote the earlier day
by hand, and its own files, still under ``models/azaion-<day>/``, become the pair again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from azaion_assets.lib.champion.card import card_json, read_card
from azaion_assets.lib.champion.files import NO_CHAMPION, Published, publish_pair
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.evaluation.export import ExportError, verified_export


class NotPromotable(RuntimeError):
    """The partition has no model, or no ONNX export that passed parity, to publish as a pair."""


def promote(
    tree: DataTree,
    partition: str,
    extra: dict[str, Any],
    expected: str | None = None,
    force: bool = False,
) -> Published:
    """Publish a partition's ``best.pt`` and its ONNX export as the champion pair.

    ``expected``: the champion the promotion was decided against (``NO_CHAMPION`` if none), so
    a champion that changed meanwhile is not replaced; ``force`` for an operator's promotion.
    """
    model_dir = tree.model_dir(partition)
    weights = model_dir / "weights" / "best.pt"
    if not weights.is_file():
        raise NotPromotable(f"no trained model for {partition}: {weights} is missing")

    def verified_card() -> dict[Path, dict[str, Any]]:
        """Under the publish lock, which ``onnx_model`` also holds to install an export: the
        file copied next is the one whose record was just checked."""
        try:
            onnx_path = verified_export(model_dir, weights)
        except ExportError as exc:
            raise NotPromotable(
                f"{exc}; materialise onnx_model for {partition} first (the champion is always "
                "a .pt with the .onnx that passed parity)"
            ) from None
        card = read_card(onnx_path)
        return {tree.champion_onnx: card_json(onnx_path, card)} if card else {}

    files = [(weights.with_suffix(".onnx"), tree.champion_onnx), (weights, tree.champion)]
    return publish_pair(
        files, partition, extra, expected=expected, force=force, cards=verified_card
    )


def expected_champion(evaluation: dict[str, Any]) -> str:
    return evaluation.get("champion_partition") or NO_CHAMPION
