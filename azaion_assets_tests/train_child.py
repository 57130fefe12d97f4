"""Train a tiny model in a child process, for the cancel and kill tests.

    python -m azaion_assets_tests.train_child <runtime_dir> <dataset_dir> <run_dir> <epochs>

Prints ``batch N`` after the first batch of epoch N (so a test can signal mid-epoch without
guessing at timings), ``epoch N`` after each epoch and ``done <start> <resumed_from_epoch>`` at
the end.
"""

import dataclasses
import sys
from pathlib import Path

from azaion_assets.lib.dataset.formed_dataset import DATA_YAML
from azaion_assets.lib.training.offline import prepare_ultralytics
from azaion_assets.lib.training.train_params import TrainParams
from azaion_assets.lib.training.trainer import train

# Small batches on tiny images: many batches per epoch, so a cancel lands between two of them.
TINY_PARAMS = TrainParams(
    model="yolo26n.yaml",
    epochs=4,
    batch=2,
    imgsz=64,
    save_period=1,
    workers=0,
    device="cpu",
    seed=0,
    amp=False,
    plots=False,
    optimizer="AdamW",
    lr0=0.002,
)

if __name__ == "__main__":
    runtime, dataset, run_dir, epochs = sys.argv[1:5]
    prepare_ultralytics(Path(runtime))
    params = dataclasses.replace(TINY_PARAMS, epochs=int(epochs))
    from ultralytics.utils.callbacks import base  # after prepare_ultralytics: offline

    announced: set[int] = set()

    def first_batch(trainer) -> None:
        if trainer.epoch + 1 not in announced:
            announced.add(trainer.epoch + 1)
            print(f"batch {trainer.epoch + 1}", flush=True)

    base.default_callbacks["on_train_batch_end"].append(first_batch)  # every model copies these
    result = train(
        Path(dataset) / DATA_YAML,
        Path(run_dir),
        params,
        data_version="v1",
        on_epoch=lambda stats: print(f"epoch {stats.epoch}", flush=True),
        log=lambda line: print(f"start: {line}", flush=True),
    )
    print(f"done {result.start} {result.resumed_from_epoch}", flush=True)
