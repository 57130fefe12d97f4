"""The champion gate's scoring against Ultralytics' validation: ``python -m bench.champion_gate``.

The gate scores the shipped ONNX file (``lib.evaluation.onnx_eval.score_onnx``: the project's
preprocessing, ONNX Runtime, Ultralytics' matching and AP), where it used to run
``YOLO(best.pt).val()``. Both score the same test split of a formed dataset, so the question is
what scoring the artefact that ships costs. Contenders, same images, medians of ``--repeat``:

- ``YOLO(best.pt).val(split="test", nms=False)`` at the same size, batch 16 (the baseline: what
  the gate used to run);
- ``YOLO(best.onnx).val(split="test", batch=1)``: Ultralytics validating the ONNX file itself;
- ``score_onnx`` on the same ONNX file (the gate, per model).

The model is a YOLO26n from its architecture YAML, trained for one epoch so that the file is a
real checkpoint; scores do not matter here, only time. The load average is printed with each
figure, since the machines are shared.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

from azaion_assets.lib.training.offline import prepare_ultralytics
from bench.timing import load_average, median_seconds

PARTITION = "2026-12-01"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--images", type=int, default=400, help="annotations; 10 %% are test")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-gate-", dir=args.workdir))
    prepare_ultralytics(work / "runtime")

    from ultralytics import YOLO

    from azaion_assets.dev.synthetic import write_samples
    from azaion_assets.lib.config.datatree import DataTree
    from azaion_assets.lib.config.settings import Settings
    from azaion_assets.lib.dataset.formed_dataset import DATA_YAML, split_images
    from azaion_assets.lib.dataset.forming import form_dataset
    from azaion_assets.lib.evaluation.export import export_onnx
    from azaion_assets.lib.evaluation.onnx_eval import score_onnx
    from azaion_assets.lib.labels.classes import load_classes, slot_names
    from azaion_assets.lib.training.train_params import TrainParams
    from azaion_assets.lib.training.trainer import train

    settings = Settings(AZAION_ROOT_DIR=work / "azaion")  # type: ignore[call-arg]
    tree = DataTree.from_settings(settings).ensure()
    write_samples(tree.data, args.images, seed=11, width=640, height=384)
    names = slot_names(load_classes(tree.classes_file))
    report = form_dataset(tree, PARTITION, (70, 20, 10), names)
    data_yaml = report.path / DATA_YAML
    params = TrainParams("yolo26n.yaml", 1, 16, args.imgsz, -1, 0, "cpu", 0, False, False)
    weights = train(data_yaml, tree.model_dir(PARTITION), params, report.data_version).best
    onnx_path = export_onnx(weights, args.imgsz)
    test = split_images(report.path, "test")
    labels = report.path / "test" / "labels"
    print(f"{len(test)} test images of 640x384 at imgsz {args.imgsz}, medians of {args.repeat}")

    def val(model: Path, batch: int, **extra) -> Callable[[], object]:
        return lambda: YOLO(str(model)).val(
            data=str(data_yaml),
            split="test",
            imgsz=args.imgsz,
            batch=batch,
            device="cpu",
            plots=False,
            verbose=False,
            project=str(work / "val"),
            exist_ok=True,
            **extra,
        )

    contenders = [
        ("YOLO(.pt).val (the old gate)", val(weights, 16, nms=False)),
        ("YOLO(.onnx).val", val(onnx_path, 1)),
        ("score_onnx (the gate)", lambda: score_onnx(onnx_path, test, labels, names)),
    ]
    results = []
    for name, run in contenders:
        run()  # warm: imports, ONNX Runtime session set-up paths, file cache
        seconds = median_seconds(run, args.repeat)
        results.append((name, seconds))
        print(f"{name:<32} {seconds:7.2f} s  load {load_average()}")
    base = results[0][1]
    print("\n| contender | seconds | ms per image | ratio to the old gate |")
    print("|---|---:|---:|---:|")
    for name, seconds in results:
        per_image = seconds / len(test) * 1000
        print(f"| {name} | {seconds:.2f} | {per_image:.1f} | {seconds / base:.2f}x |")


if __name__ == "__main__":
    main()
