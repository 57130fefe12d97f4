"""Which checkpoint a retry resumes: complete, unstripped, newest; and the resume record."""

import dataclasses
from pathlib import Path

import pytest
import torch

from azaion_assets.lib.training.checkpoints import (
    find_resumable,
    prune_epoch_files,
    resume_mismatch,
    write_resume_record,
)
from azaion_assets.lib.training.start_plan import plan_start, training_identity
from azaion_assets.lib.training.train_params import TrainParams
from azaion_assets_tests.train_child import TINY_PARAMS


def _save(path: Path, epoch: int, optimizer: object = "state") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": epoch, "optimizer": optimizer, "model": None}, path)
    return path


def test_the_newest_complete_unstripped_checkpoint_wins(tmp_path):
    weights = tmp_path / "weights"
    _save(weights / "epoch3.pt", 3)
    _save(weights / "epoch4.pt", 4)
    last = _save(weights / "last.pt", 5)
    found = find_resumable(weights, epochs=10)
    assert found is not None and (found.path.name, found.epoch) == ("last.pt", 5)

    last.write_bytes(last.read_bytes()[:100])  # killed while Ultralytics rewrote last.pt
    found = find_resumable(weights, epochs=10)
    assert found is not None and (found.path.name, found.epoch) == ("epoch4.pt", 4)


def test_stripped_and_finished_checkpoints_are_never_resumed(tmp_path):
    weights = tmp_path / "weights"
    _save(weights / "last.pt", -1, optimizer=None)  # what strip_optimizer leaves
    assert find_resumable(weights, epochs=10) is None
    _save(weights / "last.pt", 9)  # the last epoch is done: nothing left to resume
    assert find_resumable(weights, epochs=10) is None
    _save(weights / "epoch2.pt", 2, optimizer=None)
    assert find_resumable(weights, epochs=10) is None
    (weights / "epoch1.pt").write_bytes(b"")
    assert find_resumable(weights, epochs=10) is None


def test_old_epoch_files_are_pruned_to_the_newest_two(tmp_path):
    for epoch in (0, 1, 2, 10, 11):
        _save(tmp_path / f"epoch{epoch}.pt", epoch)
    removed = prune_epoch_files(tmp_path)
    assert sorted(p.name for p in removed) == ["epoch0.pt", "epoch1.pt", "epoch2.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch10.pt", "epoch11.pt"]


def test_the_resume_record_names_what_changed(tmp_path):
    assert "missing" in str(resume_mismatch(tmp_path, {"epochs": 3}))
    write_resume_record(tmp_path, {"epochs": 3, "data_version": "a", "lr0": 0.01})
    assert resume_mismatch(tmp_path, {"epochs": 3, "data_version": "a", "lr0": 0.01}) is None
    reason = resume_mismatch(tmp_path, {"epochs": 4, "data_version": "b", "lr0": 0.01})
    assert reason == "it was started with different data_version, epochs"


PARAMS = dataclasses.replace(TINY_PARAMS, epochs=10)


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    path = tmp_path / ".azaion-2026-11-24.training"
    write_resume_record(path, training_identity(PARAMS, "v1"))
    return path


def test_a_first_attempt_starts_fresh(tmp_path):
    start = plan_start(tmp_path / "absent", PARAMS, training_identity(PARAMS, "v1"))
    assert start.mode == "fresh" and start.checkpoint is None


def test_an_interrupted_attempt_resumes(staging):
    _save(staging / "weights" / "last.pt", 4)
    start = plan_start(staging, PARAMS, training_identity(PARAMS, "v1"))
    assert start.mode == "resume" and start.checkpoint is not None
    assert start.checkpoint.epoch == 4 and "after epoch 5/10" in start.reason


def test_device_and_workers_may_change_on_resume_but_not_the_data(staging):
    _save(staging / "weights" / "last.pt", 4)
    moved = TrainParams(**{**PARAMS.__dict__, "device": "0", "workers": 8})
    assert plan_start(staging, moved, training_identity(moved, "v1")).mode == "resume"
    start = plan_start(staging, PARAMS, training_identity(PARAMS, "v2"))
    assert start.mode == "fresh" and "different data_version" in start.reason


def test_the_same_start_weights_path_with_other_bytes_is_another_training(tmp_path):
    """A fine-tuning of the champion's dated best.pt, interrupted; then that day was trained
    and promoted again: same path, other bytes. The retry must not resume."""
    planned = dataclasses.replace(PARAMS, model="/m/azaion-2026-11-30/weights/best.pt")
    first = dataclasses.replace(planned, start_sha256="a" * 64)
    staging = tmp_path / ".azaion-2026-12-01.training"
    write_resume_record(staging, training_identity(first, "v1"))
    _save(staging / "weights" / "last.pt", 4)
    assert plan_start(staging, first, training_identity(first, "v1")).mode == "resume"
    after = dataclasses.replace(planned, start_sha256="b" * 64)
    start = plan_start(staging, after, training_identity(after, "v1"))
    assert start.mode == "fresh" and "different start_sha256" in start.reason


def test_an_attempt_without_a_usable_checkpoint_says_it_starts_over(staging):
    (staging / "weights").mkdir()
    (staging / "weights" / "last.pt").write_bytes(b"torn")
    start = plan_start(staging, PARAMS, training_identity(PARAMS, "v1"))
    assert start.mode == "fresh" and "no resumable checkpoint" in start.reason


def test_an_attempt_that_trained_every_epoch_is_finished_not_retrained(staging):
    _save(staging / "weights" / "last.pt", 9)
    _save(staging / "weights" / "best.pt", 7)
    assert plan_start(staging, PARAMS, training_identity(PARAMS, "v1")).mode == "finished"
    _save(staging / "weights" / "last.pt", -1, optimizer=None)  # stripped: final eval had begun
    assert plan_start(staging, PARAMS, training_identity(PARAMS, "v1")).mode == "finished"


def test_a_finished_training_in_the_partition_folder_is_reused_not_retrained(tmp_path):
    run_dir = tmp_path / "azaion-2026-11-24"
    staging = tmp_path / ".azaion-2026-11-24.training"
    identity = training_identity(PARAMS, "v1")
    write_resume_record(run_dir, identity)
    _save(run_dir / "weights" / "last.pt", -1, optimizer=None)
    _save(run_dir / "weights" / "best.pt", -1, optimizer=None)
    start = plan_start(staging, PARAMS, identity, run_dir)
    assert start.mode == "trained" and "reusing" in start.reason
    # Another dataset version is another training.
    assert plan_start(staging, PARAMS, training_identity(PARAMS, "v2"), run_dir).mode == "fresh"
    # An attempt in progress comes first.
    _save(staging / "weights" / "last.pt", 3)
    write_resume_record(staging, identity)
    assert plan_start(staging, PARAMS, identity, run_dir).mode == "resume"
