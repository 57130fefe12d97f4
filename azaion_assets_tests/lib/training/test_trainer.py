import dataclasses
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from azaion_assets.dev.synthetic import write_samples
from azaion_assets.lib.dataset.formed_dataset import DATA_YAML
from azaion_assets.lib.dataset.forming import form_dataset
from azaion_assets.lib.labels.classes import load_classes, slot_names
from azaion_assets.lib.training.checkpoints import find_resumable, load_checkpoint
from azaion_assets.lib.training.offline import prepare_ultralytics
from azaion_assets.lib.training.train_params import EpochStats
from azaion_assets.lib.training.trainer import partition_lock, train
from azaion_assets_tests.train_child import TINY_PARAMS


def test_epoch_line_names_epoch_losses_and_map():
    stats = EpochStats(3, 10, {"train/box_loss": 1.5}, {"metrics/mAP50(B)": 0.25})
    assert stats.line() == "epoch 3/10 train/box_loss=1.5000 metrics/mAP50(B)=0.2500"


PARTITION = "2026-11-24"


@pytest.fixture
def tiny_dataset(tree, runtime_dir) -> tuple[Path, Path]:
    """A formed 40-image dataset; returns (dataset_dir, run_dir)."""
    prepare_ultralytics(runtime_dir)  # the tests read checkpoints, which imports Ultralytics
    write_samples(tree.data, 40, seed=3)
    report = form_dataset(
        tree, PARTITION, (70, 20, 10), slot_names(load_classes(tree.classes_file))
    )
    return report.path, tree.model_dir(PARTITION)


def _child(dataset: Path, run_dir: Path, runtime_dir: Path, epochs: int) -> subprocess.Popen:
    args = [sys.executable, "-m", "azaion_assets_tests.train_child", str(runtime_dir)]
    args += [str(dataset), str(run_dir), str(epochs)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run_until(child: subprocess.Popen, mark: str) -> list[str]:
    """Read the child's output up to the line ``mark`` (``epoch N``: N done; ``batch N``: N's
    first batch done)."""
    assert child.stdout is not None
    seen = []
    for line in child.stdout:
        seen.append(line.rstrip())
        if line.rstrip().endswith(mark):  # the progress bar (stderr) may share its line
            return seen
    tail = "\n".join(seen[-30:])
    raise AssertionError(f"training ended before {mark!r}:\n{tail}")


def _finish(child: subprocess.Popen) -> list[str]:
    out, _ = child.communicate(timeout=600)
    return [line for line in out.splitlines() if line.startswith(("start:", "epoch", "done"))]


@pytest.mark.slow
def test_a_cancel_stops_at_the_next_batch_and_the_retry_resumes(tiny_dataset, runtime_dir):
    dataset, run_dir = tiny_dataset
    staging = run_dir.with_name(f".{run_dir.name}.training")
    child = _child(dataset, run_dir, runtime_dir, epochs=4)
    _run_until(child, "epoch 1")
    best = staging / "weights" / "best.pt"
    best_after_epoch_1 = best.read_bytes()
    _run_until(child, "batch 2")  # into the second epoch's batches
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    child.communicate(timeout=120)
    assert time.monotonic() - sent < 20, "the cancel did not stop training promptly"
    assert child.returncode != 0  # the interrupt is delivered once the checkpoint is written
    assert not run_dir.exists(), "a cancelled training must not replace the partition's model"
    found = find_resumable(staging / "weights", epochs=4)
    assert found is not None and found.epoch == 0  # epoch 2 was under way: it is redone
    assert best.read_bytes() == best_after_epoch_1  # half an epoch never becomes best.pt

    lines = _finish(_child(dataset, run_dir, runtime_dir, epochs=4))
    assert lines[0] == f"start: resuming from last.pt after epoch {found.epoch + 1}/4"
    assert lines[-1] == f"done resume {found.epoch + 1}"
    assert [line for line in lines if line.startswith("epoch")][-1] == "epoch 4"
    ckpt = load_checkpoint(run_dir / "weights" / "best.pt")
    assert ckpt is not None and ckpt["optimizer"] is None  # the final model is stripped


@pytest.mark.slow
def test_a_killed_training_resumes_from_its_last_checkpoint(tiny_dataset, runtime_dir):
    dataset, run_dir = tiny_dataset
    child = _child(dataset, run_dir, runtime_dir, epochs=4)
    _run_until(child, "epoch 2")
    child.kill()  # SIGKILL: no cleanup of any kind
    child.wait()
    lines = _finish(_child(dataset, run_dir, runtime_dir, epochs=4))
    assert lines[0].startswith("start: resuming from ")
    resumed = int(lines[-1].split()[-1])
    assert lines[-1].startswith("done resume") and resumed >= 2  # never from scratch
    assert next(line for line in lines if line.startswith("epoch")) == f"epoch {resumed + 1}"
    assert (run_dir / "weights" / "best.pt").is_file()


@pytest.mark.slow
def test_a_cpu_run_reports_neither_amp_nor_cuda(tiny_dataset):
    """TRAINING_AMP defaults to true, but Ultralytics uses AMP on CUDA only: a CPU run's result
    must say it did not, and carry no CUDA, cuDNN or GPU entry."""
    dataset, run_dir = tiny_dataset
    params = dataclasses.replace(TINY_PARAMS, epochs=1, amp=True, device="cpu")
    result = train(dataset / DATA_YAML, run_dir, params, data_version="v1")
    assert result.device == "cpu" and result.amp is False
    assert result.hyperparameters()["amp"] is False
    assert result.amp_note() == "not used on cpu (AMP is for CUDA)"
    assert set(result.versions) == {"python", "torch", "ultralytics"}


def test_a_second_attempt_at_a_partition_waits_for_the_first_to_stop(tmp_path):
    run_dir = tmp_path / "models" / "azaion-2026-11-24"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from azaion_assets.lib.training.trainer import partition_lock\n"
            "with partition_lock(Path(sys.argv[1]), print):\n"
            "    print('holding', flush=True)\n"
            "    time.sleep(600)\n",
            str(run_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    said: list[str] = []
    acquired = threading.Event()

    def second_attempt() -> None:
        with partition_lock(run_dir, said.append):
            acquired.set()

    waiter = threading.Thread(target=second_attempt)
    waiter.start()
    deadline = time.monotonic() + 10
    while not said and time.monotonic() < deadline:  # the waiter says so before it blocks
        time.sleep(0.05)
    time.sleep(0.5)  # and stays blocked
    assert not acquired.is_set() and said == [
        f"waiting for an earlier attempt at {run_dir.name} to stop"
    ]
    holder.kill()  # a dead process's lock is released by the kernel
    holder.wait()
    waiter.join(timeout=10)
    assert acquired.is_set()
