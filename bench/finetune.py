"""Fine-tuning from the champion against a full retraining: ``python -m bench.finetune``.

The question is what TRAINING_START=champion buys: time, and at what cost in the score the gate
judges. One synthetic data tree, on the CPU:

1. a dataset of ``--images`` annotations; a full training from the base architecture
   (``yolo26n.yaml``) for ``--epochs`` epochs becomes the champion (published as a promotion
   publishes ``azaion.pt``);
2. ``--grow`` new annotations arrive; the grown dataset is formed (recorded splits do not
   change, so no test image of the first dataset was ever trained on);
3. on the grown dataset: a full retraining from the base for ``--epochs`` epochs (the baseline)
   against fine-tunings of the champion, its start chosen by ``start_weights.choose_start`` as
   the ``model`` step chooses it. ``--finetune`` lists them as ``EPOCHS@LR0``: by default a
   quarter of the epochs (as TRAINING_FINETUNE_EPOCHS 30 is of TRAINING_EPOCHS 120) at the full
   training's learning rate, the same at a quarter of the rate, and half of the epochs.

Both run through ``lib.training.trainer.train`` (the ``model`` step's trainer, without Dagster
around it) and are scored as shipped: exported to ONNX, then ``champion_gate.evaluate`` on the
grown dataset's test split, as ``onnx_model`` scores them. The champion itself is scored there
too, for reference. Wall times are the trainer's; the load average is printed at each step.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

from azaion_assets.lib.training.offline import prepare_ultralytics
from bench.timing import load_average

FIRST, GROWN = "2026-12-01", "2026-12-02"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--images", type=int, default=400, help="first dataset's annotations")
    parser.add_argument("--grow", type=int, default=200, help="annotations that arrive after")
    parser.add_argument("--imgsz", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=20, help="a full training's epochs")
    parser.add_argument("--lr0", type=float, default=0.002, help="AdamW, as the demo profile")
    parser.add_argument("--finetune", default="5@0.002,5@0.0005,10@0.002", help="EPOCHS@LR0,...")
    args = parser.parse_args()
    tunings = [(int(e), float(lr)) for e, lr in (v.split("@") for v in args.finetune.split(","))]
    work = Path(tempfile.mkdtemp(prefix="bench-finetune-", dir=args.workdir))
    prepare_ultralytics(work / "runtime")

    from azaion_assets.dev.synthetic import write_samples
    from azaion_assets.lib.champion.files import publish
    from azaion_assets.lib.champion.start_weights import choose_start
    from azaion_assets.lib.config.datatree import DataTree
    from azaion_assets.lib.config.settings import Settings
    from azaion_assets.lib.dataset.formed_dataset import DATA_YAML
    from azaion_assets.lib.dataset.forming import form_dataset
    from azaion_assets.lib.evaluation.champion_gate import evaluate
    from azaion_assets.lib.evaluation.export import export_onnx
    from azaion_assets.lib.labels.classes import load_classes, slot_names
    from azaion_assets.lib.training.train_params import TrainParams
    from azaion_assets.lib.training.trainer import train

    settings = Settings(
        azaion_root_dir=work / "azaion",
        training_model="yolo26n.yaml",
        training_epochs=args.epochs,
        training_start="champion",
        training_finetune_epochs=tunings[0][0],
    )
    tree = DataTree.from_settings(settings).ensure()
    names = slot_names(load_classes(tree.classes_file))
    print(f"load {load_average()} at the start; imgsz {args.imgsz}, CPU")

    def trained(dataset: Path, run_dir: Path, model: str, epochs: int, lr0: float, sha: str | None):
        params = TrainParams(
            model, epochs, 16, args.imgsz, -1, 0, "cpu", 0, False, False, "AdamW", lr0, sha
        )
        result = train(dataset / DATA_YAML, run_dir, params, data_version=dataset.name)
        onnx_path = export_onnx(result.best, args.imgsz)
        return result.wall_seconds, result.best, onnx_path

    write_samples(tree.data, args.images, seed=21)
    first = form_dataset(tree, FIRST, (70, 20, 10), names)
    champion_s, champion_pt, champion_onnx = trained(
        first.path, tree.model_dir(FIRST), "yolo26n.yaml", args.epochs, args.lr0, None
    )
    publish(champion_pt, tree.champion, FIRST)
    print(f"champion: {args.epochs} epochs on {first.images} in {champion_s:.0f} s")

    write_samples(tree.data, args.grow, seed=22)
    grown = form_dataset(tree, GROWN, (70, 20, 10), names)
    print(f"grown dataset: {grown.images}; load {load_average()}")

    start = choose_start(settings, tree, since_full=0)
    assert start.kind == "champion", start.reason
    rows = [("champion, as it is", 0.0, evaluate(champion_onnx, grown.path, names))]
    full = (
        f"full from the base, {args.epochs} epochs",
        "yolo26n.yaml",
        args.epochs,
        args.lr0,
        None,
    )
    tuned = [(f"fine-tune, {e} epochs", start.weights, e, lr, start.sha256) for e, lr in tunings]
    for i, (label, model, epochs, lr0, sha) in enumerate([full, *tuned]):
        label = f"{label}, lr0 {lr0}"
        seconds, _, onnx_path = trained(grown.path, work / "runs" / str(i), model, epochs, lr0, sha)
        rows.append((label, seconds, evaluate(onnx_path, grown.path, names)))
        print(f"{label}: {seconds:.1f} s; load {load_average()}")
    _report(rows, args)


def _report(rows: list, args: argparse.Namespace) -> None:
    baseline = rows[1][1]
    test = rows[0][2].images
    print(
        f"\n{date.today()}, {test} test images of the grown dataset at imgsz {args.imgsz}, "
        f"load {load_average()} at the end ({time.strftime('%H:%M')})\n"
    )
    print("| contender | training s | ratio to full | test mAP50 | test mAP50-95 |")
    print("|---|---:|---:|---:|---:|")
    for label, seconds, score in rows:
        ratio = f"{seconds / baseline:.2f}x" if seconds else "-"
        time_s = f"{seconds:.1f}" if seconds else "-"
        print(f"| {label} | {time_s} | {ratio} | {score.map50:.4f} | {score.map50_95:.4f} |")


if __name__ == "__main__":
    main()
