import hashlib
import os
import subprocess
import sys
from collections import Counter

from azaion_assets.lib.dataset.video_split import assign_split, bucket


def test_split_of_every_name_is_pinned():
    """Which split 2,000 videos fall in, pinned: a change of hash, of bucket arithmetic or of
    the order of the splits would move recorded videos between train and test."""
    names = [f"video_{i:05d}" for i in range(2000)]
    splits = ",".join(assign_split(n, (70, 20, 10)) for n in names)
    assert hashlib.sha256(splits.encode()).hexdigest()[:16] == "1c5eadcf0473abd8"
    assert [assign_split(n, (70, 20, 10)) for n in names[:4]] == ["valid", "train", "valid", "test"]


def test_a_bucket_on_a_boundary_goes_to_the_next_split():
    # Names whose bucket is exactly 0, 70 and 90: train is [0, 70), valid [70, 90), test [90, 100).
    assert [bucket(n) for n in ("n690", "n8129", "n2567")] == [0.0, 70.0, 90.0]
    assert assign_split("n690", (70, 20, 10)) == "train"
    assert assign_split("n8129", (70, 20, 10)) == "valid"
    assert assign_split("n2567", (70, 20, 10)) == "test"
    assert assign_split("n690", (0, 50, 50)) == "valid"


def test_split_is_stable_across_processes_and_hash_seeds():
    code = (
        "from azaion_assets.lib.dataset.video_split import bucket; "
        "print([bucket(f'f{i}') for i in range(50)])"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    assert outputs.pop().strip() == str([bucket(f"f{i}") for i in range(50)])


def test_bucket_is_pinned():
    # A change of hash function would move every image between splits: never do that silently.
    assert round(bucket("azaion"), 2) == 1.17


def test_split_proportions_are_close_to_the_percentages():
    counts = Counter(assign_split(f"img_{i}", (70, 20, 10)) for i in range(20000))
    assert abs(counts["train"] / 20000 - 0.70) < 0.015
    assert abs(counts["valid"] / 20000 - 0.20) < 0.015
    assert abs(counts["test"] / 20000 - 0.10) < 0.015


def test_a_test_image_never_moves_to_train_as_the_dataset_grows():
    test_names = [
        f"img_{i}" for i in range(5000) if assign_split(f"img_{i}", (70, 20, 10)) == "test"
    ]
    assert test_names
    assert all(assign_split(n, (70, 20, 10)) == "test" for n in test_names)
