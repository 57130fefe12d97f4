"""The champion's weights as a fine-tuning loads them: bytes that no promotion can change.

``models/azaion.pt`` is replaced whenever a model is promoted, which may happen while a training
runs or between a failed attempt and its retry. So a fine-tuning never loads that file: it
loads the champion's dated weights (``models/azaion-<held>/weights/best.pt``, which the promotion
copied) while they are still the same bytes, else a copy named by its sha256 under
``models/.champion-weights/``. Either way the sha256 names the bytes, and it is part of the
training's identity (``start_plan.training_identity``), so a retry never resumes a checkpoint
that started from other weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from azaion_assets.lib.champion.files import UNKNOWN, held_file, publish_lock
from azaion_assets.lib.config.datatree import DATASET_PREFIX, DataTree
from azaion_assets.lib.fsio.atomic import atomic_copy
from azaion_assets.lib.fsio.digest import sha256
from azaion_assets.lib.training.checkpoints import load_checkpoint

COPIES = ".champion-weights"  # under models/: hidden, like the staging folders


@dataclass(frozen=True)
class ChampionWeights:
    path: Path  # the dated best.pt, or the copy named by its sha256
    sha256: str
    partition: str  # the partition azaion.pt holds; ``UNKNOWN`` if its record does not vouch

    @property
    def label(self) -> str:
        """How the operator's line names the champion: its dated folder, when known."""
        if self.partition == UNKNOWN:
            return "azaion.pt (partition unknown)"
        return f"{DATASET_PREFIX}{self.partition}"


def champion_weights(tree: DataTree) -> ChampionWeights | None:
    """The champion's weights at a path no promotion rewrites; None if there is no champion.

    Read under the publish lock, which a promotion holds while it writes the pair, so the
    hash and the copy are of one and the same champion.
    """
    with publish_lock(tree.models):
        held = held_file(tree.champion)
        if held is None:
            return None
        if held.partition != UNKNOWN:
            dated = tree.model_dir(held.partition) / "weights" / "best.pt"
            if dated.is_file() and sha256(dated) == held.sha256:
                return ChampionWeights(dated, held.sha256, held.partition)
        copy = tree.models / COPIES / f"{held.sha256[:16]}.pt"
        if not (copy.is_file() and sha256(copy) == held.sha256):
            copy.parent.mkdir(parents=True, exist_ok=True)
            atomic_copy(tree.champion, copy)
        _prune(copy)
        return ChampionWeights(copy, held.sha256, held.partition)


def _prune(current: Path) -> None:
    """Earlier champions' copies: no new training loads them (a retry decides again, and a
    resume loads its checkpoint), and each is a whole model."""
    for path in current.parent.glob("*.pt"):
        if path != current:
            path.unlink(missing_ok=True)


def weights_names(path: Path) -> dict[int, str] | None:
    """The class slot names stored in an Ultralytics checkpoint: what its head was trained
    to mean. None if the file is unreadable or holds no model. Imports Ultralytics (the
    unpickler does): ``prepare_ultralytics`` first."""
    ckpt = load_checkpoint(path)
    if ckpt is None:
        return None
    model = ckpt.get("model")
    if model is None:
        model = ckpt.get("ema")
    names = getattr(model, "names", None)
    if not isinstance(names, dict) or not names:
        return None
    return {int(slot): str(name) for slot, name in names.items()}
