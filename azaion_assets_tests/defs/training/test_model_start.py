"""What the ``model`` asset starts from, materialised on a real Dagster instance with real tiny
trainings: a fine-tuning loads the champion's weights and says so, the count of fine-tunings
comes from the instance, and a retry after the champion changed starts over."""

from pathlib import Path

import pytest
from dagster import DagsterInstance, FloatMetadataValue, IntMetadataValue, materialize

from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.dev.synthetic import write_samples
from azaion_assets.lib.champion.files import publish
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.sources import load_settings
from azaion_assets.lib.dataset.forming import form_dataset
from azaion_assets.lib.fsio.digest import sha256
from azaion_assets.lib.labels.classes import load_classes, slot_names
from azaion_assets.lib.training.checkpoints import RESUME_RECORD, find_resumable, load_checkpoint
from azaion_assets.lib.training.offline import prepare_ultralytics
from azaion_assets_tests.conftest import TINY_PROFILE
from azaion_assets_tests.dated import model

pytestmark = pytest.mark.slow

HELD, DAY, NEXT = "2026-11-28", "2026-11-29", "2026-11-30"
RESOURCES = {"azaion_settings": AzaionSettingsResource()}


@pytest.fixture
def tree(root: Path, runtime_dir: Path, monkeypatch: pytest.MonkeyPatch) -> DataTree:
    """A data tree with annotations, and a profile that trains one epoch at 64 pixels."""
    profile = {
        **TINY_PROFILE,
        "TRAINING_EPOCHS": "1",
        "TRAINING_IMGSZ": "64",
        "TRAINING_BATCH_SIZE": "8",
        "TRAINING_PLOTS": "false",
    }
    for key, value in profile.items():
        monkeypatch.setenv(key, value)
    prepare_ultralytics(runtime_dir)  # the tests read checkpoints, which imports Ultralytics
    tree = DataTree.from_settings(load_settings()).ensure()
    write_samples(tree.data, 24, seed=4)
    return tree


def _train(instance: DagsterInstance, tree: DataTree, partition: str):
    """Form the day's dataset and materialise ``model`` for it; the run's model metadata."""
    names = slot_names(load_classes(tree.classes_file))
    if not tree.dataset_dir(partition).is_dir():
        form_dataset(tree, partition, (70, 20, 10), names)
    result = materialize([model], instance=instance, partition_key=partition, resources=RESOURCES)
    (event,) = result.asset_materializations_for_node("model")
    return event.metadata


def _values(metadata) -> dict:
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def _promote(tree: DataTree, partition: str) -> Path:
    """Publish a day's best.pt as the champion, as a promotion does."""
    weights = tree.model_dir(partition) / "weights" / "best.pt"
    assert publish(weights, tree.champion, partition).published
    return weights


def test_a_fine_tuning_loads_the_champion_and_every_second_training_is_full(
    tree, instance, monkeypatch
):
    first = _values(_train(instance, tree, HELD))
    assert first["training_start_from"] == "base" and first["start_weights"] == "yolo26n.yaml"
    dated = _promote(tree, HELD)
    monkeypatch.setenv("TRAINING_START", "champion")
    monkeypatch.setenv("TRAINING_FINETUNE_EPOCHS", "2")
    monkeypatch.setenv("TRAINING_FULL_EVERY", "2")

    metadata = _train(instance, tree, DAY)
    tuned = _values(metadata)
    assert tuned["training_start_from"] == "champion"
    assert tuned["start_weights"] == str(dated)
    assert tuned["start_weights_sha256"] == sha256(tree.champion)
    assert tuned["start_reason"] == (
        f"fine-tuning from champion azaion-{HELD} (1 of 1 before a full retraining)"
    )
    assert tuned["training_run"]["epochs"] == 2  # TRAINING_FINETUNE_EPOCHS, not TRAINING_EPOCHS
    assert tuned["training_run"]["fine_tunings_since_full"] == 0
    # Ultralytics itself records what the weights were loaded from.
    best = load_checkpoint(tree.model_dir(DAY) / "weights" / "best.pt")
    assert best is not None and best["train_args"]["model"] == str(dated)
    plotted = [
        k for k, v in metadata.items() if isinstance(v, IntMetadataValue | FloatMetadataValue)
    ]
    assert all(k.startswith("diagnostic_val_") for k in plotted), plotted

    full = _values(_train(instance, tree, NEXT))  # the count comes from DAY's materialisation
    assert (full["training_start_from"], full["start_weights"]) == ("base", "yolo26n.yaml")
    assert full["start_reason"] == (
        "full retraining from yolo26n.yaml: 1 fine-tuning since the last one "
        "(TRAINING_FULL_EVERY=2)"
    )
    assert full["training_run"]["epochs"] == 1
    assert full["start_weights_sha256"].startswith("none")


def test_a_retry_after_the_champion_changed_does_not_resume_the_old_start(
    tree, instance, monkeypatch
):
    """The first attempt at DAY fine-tunes the champion and dies after an epoch; meanwhile
    HELD is trained again and promoted: the same dated path, other bytes. The retry trains
    from the new champion, from the start."""
    _train(instance, tree, HELD)
    dated = _promote(tree, HELD)
    monkeypatch.setenv("TRAINING_START", "champion")
    monkeypatch.setenv("TRAINING_FINETUNE_EPOCHS", "2")
    from ultralytics.utils.callbacks import base

    def crash(trainer) -> None:
        raise RuntimeError("the training process died after an epoch")

    hooks = base.default_callbacks["on_fit_epoch_end"]
    monkeypatch.setitem(base.default_callbacks, "on_fit_epoch_end", [*hooks, crash])
    names = slot_names(load_classes(tree.classes_file))
    form_dataset(tree, DAY, (70, 20, 10), names)
    failed = materialize(
        [model], instance=instance, partition_key=DAY, resources=RESOURCES, raise_on_error=False
    )
    assert not failed.success
    staging = tree.models / f".azaion-{DAY}.training"
    assert find_resumable(staging / "weights", 2) is not None  # an unchanged start would resume
    old = sha256(tree.champion)
    assert f'"start_sha256": "{old}"' in (staging / RESUME_RECORD).read_text()

    monkeypatch.setitem(base.default_callbacks, "on_fit_epoch_end", hooks)
    with monkeypatch.context() as retrained:  # HELD again (another seed), promoted again
        retrained.setenv("TRAINING_START", "base")
        retrained.setenv("TRAINING_SEED", "1")
        _train(instance, tree, HELD)
    assert sha256(_promote(tree, HELD)) != old

    retry = _values(_train(instance, tree, DAY))
    assert retry["start_weights"] == str(dated)  # the same path...
    assert retry["start_weights_sha256"] == sha256(tree.champion) != old  # ...other bytes
    assert retry["training_start"] == "fresh"
    assert "different start_sha256" in retry["training_start_reason"]
    assert retry["training_run"]["resumed_after_epoch"] == 0
