"""What a training starts from: the base model or the champion, on real Ultralytics checkpoints
published the way a promotion publishes them (an untrained yolo26n: the decision reads the
weights' class names and bytes, not their quality)."""

import json
from pathlib import Path

import pytest

from azaion_assets.lib.champion.files import publish
from azaion_assets.lib.champion.start_weights import choose_start
from azaion_assets.lib.champion.weights import COPIES
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.fsio.digest import sha256
from azaion_assets.lib.labels.classes import load_classes, slot_names
from azaion_assets.lib.training.offline import prepare_ultralytics
from azaion_assets.lib.training.start_plan import StartWeightsChanged, verify_start_weights

HELD = "2026-11-30"


def _settings(tree: DataTree, **values) -> Settings:
    fields = {"azaion_root_dir": tree.root, "training_model": "yolo26n.yaml", **values}
    return Settings(**fields)


def _checkpoint(path: Path, names: dict[int, str]) -> Path:
    """A real Ultralytics checkpoint (an untrained yolo26n) whose head means ``names``."""
    from ultralytics import YOLO

    model = YOLO("yolo26n.yaml")
    model.model.names = names  # type: ignore[union-attr]
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


@pytest.fixture
def champion(tree: DataTree, runtime_dir: Path) -> Path:
    """A champion promoted from HELD: its dated best.pt, copied to azaion.pt with a record."""
    prepare_ultralytics(runtime_dir)
    names = slot_names(load_classes(tree.classes_file))
    dated = _checkpoint(tree.model_dir(HELD) / "weights" / "best.pt", names)
    assert publish(dated, tree.champion, HELD).published
    return dated


def _rename_class(tree: DataTree, class_id: int, name: str) -> None:
    classes = json.loads(tree.classes_file.read_text())
    next(c for c in classes if c["Id"] == class_id)["Name"] = name
    tree.classes_file.write_text(json.dumps(classes))


def test_a_training_starts_from_the_base_by_default(tree, champion):
    start = choose_start(_settings(tree), tree, since_full=0)
    assert (start.kind, start.weights, start.epochs) == ("base", "yolo26n.yaml", 120)
    assert start.sha256 is None  # an architecture YAML has no weights to hash
    assert start.reason == "full retraining from yolo26n.yaml: TRAINING_START=base"


def test_with_training_start_champion_it_fine_tunes_the_champions_dated_weights(tree, champion):
    start = choose_start(_settings(tree, training_start="champion"), tree, since_full=0)
    assert (start.kind, start.weights, start.epochs) == ("champion", str(champion), 30)
    assert start.sha256 == sha256(tree.champion)
    assert start.reason == (
        f"fine-tuning from champion azaion-{HELD} (1 of 4 before a full retraining)"
    )


def test_every_nth_training_is_a_full_one(tree, champion):
    s = _settings(tree, training_start="champion", training_full_every=5)
    assert choose_start(s, tree, since_full=3).kind == "champion"
    full = choose_start(s, tree, since_full=4)
    assert (full.kind, full.epochs) == ("base", 120)
    assert full.reason == (
        "full retraining from yolo26n.yaml: 4 fine-tunings since the last one "
        "(TRAINING_FULL_EVERY=5)"
    )
    always = _settings(tree, training_start="champion", training_full_every=1)
    assert choose_start(always, tree, since_full=0).kind == "base"
    never = _settings(tree, training_start="champion", training_full_every=0)
    assert choose_start(never, tree, since_full=500).kind == "champion"


def test_a_changed_class_table_forces_a_full_retraining(tree, champion):
    _rename_class(tree, 0, "Renamed")
    start = choose_start(_settings(tree, training_start="champion"), tree, since_full=0)
    assert start.kind == "base"
    old = slot_names(load_classes(tree.classes_file))  # to name the old one in the reason
    assert start.reason.startswith("full retraining from yolo26n.yaml: the class table changed")
    assert "slot 0: " in start.reason and "-> Renamed" in start.reason
    assert "slot 20: " in start.reason and f"-> {old[20]}" in start.reason


def test_no_champion_or_an_unreadable_one_means_a_full_retraining(tree, tmp_path, runtime_dir):
    prepare_ultralytics(runtime_dir)
    s = _settings(tree, training_start="champion")
    start = choose_start(s, tree, since_full=0)
    assert (start.kind, start.reason) == (
        "base",
        "full retraining from yolo26n.yaml: there is no champion yet",
    )
    (tmp_path / "torn.pt").write_bytes(b"not a checkpoint")
    publish(tmp_path / "torn.pt", tree.champion, HELD)
    start = choose_start(s, tree, since_full=0)
    assert start.kind == "base" and "the champion's weights are unreadable" in start.reason


def test_a_champion_whose_dated_weights_changed_is_loaded_from_a_copy_no_promotion_touches(
    tree, champion, tmp_path
):
    """The champion's day was trained again: its dated best.pt is no longer the champion's
    bytes, so the fine-tuning loads a copy named by the champion's sha256, which survives the
    next promotion."""
    held_bytes = tree.champion.read_bytes()
    _checkpoint(champion, slot_names(load_classes(tree.classes_file)))  # retrained in place
    start = choose_start(_settings(tree, training_start="champion"), tree, since_full=2)
    copy = tree.models / COPIES / f"{sha256(tree.champion)[:16]}.pt"
    assert start.weights == str(copy) and start.sha256 == sha256(tree.champion)
    assert start.reason == (
        f"fine-tuning from champion azaion-{HELD} (3 of 4 before a full retraining)"
    )
    newer = _checkpoint(tmp_path / "newer.pt", slot_names(load_classes(tree.classes_file)))
    assert publish(newer, tree.champion, "2026-12-01").published
    assert copy.read_bytes() == held_bytes
    verify_start_weights(start.weights, start.sha256)  # still what was planned


def test_the_launchpad_model_is_a_base_start_and_its_epochs_apply_to_either(tree, champion):
    s = _settings(tree, training_start="champion")
    named = choose_start(s, tree, since_full=0, model=str(champion), epochs=7)
    assert (named.kind, named.weights, named.epochs) == ("base", str(champion), 7)
    assert named.sha256 == sha256(champion)  # a .pt base is hashed like the champion
    assert named.reason == "full retraining from best.pt: the launchpad named the model"
    assert choose_start(s, tree, since_full=0, epochs=7).epochs == 7


def test_start_weights_replaced_after_planning_are_refused(tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"planned")
    planned = sha256(weights)
    verify_start_weights(str(weights), planned)
    verify_start_weights("yolo26n.yaml", None)  # nothing to verify for an architecture
    weights.write_bytes(b"promoted meanwhile")
    with pytest.raises(StartWeightsChanged, match="changed since this training was planned"):
        verify_start_weights(str(weights), planned)
