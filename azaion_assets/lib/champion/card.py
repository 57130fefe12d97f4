"""The model card: everything a deployer needs to run ``azaion.onnx`` and get our detections.

Running the file with the wrong preprocessing fails silently: a rectangular letterbox, another
input size, BGR pixels or the one-to-many head plus NMS all give plausible boxes that are not
ours (``YOLO(azaion.pt).predict`` with default arguments matched 0% of the ONNX boxes on
non-square images). The card writes the contract down, once, from the file itself and from
``lib/evaluation/preprocess.py``, which is the reference implementation of every step it names.

The card travels inside the ONNX (``metadata_props``, one ``azaion.<field>`` key per top-level
field, JSON values) so it cannot be separated from the weights, and as JSON beside it: the
published ``models/azaion.onnx.json`` and the release manifest. The ONNX cannot hold its own
sha256, so only the JSON card carries it (``card_json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from azaion_assets.lib.evaluation.preprocess import PAD_VALUE
from azaion_assets.lib.fsio.atomic import replacing
from azaion_assets.lib.fsio.digest import sha256
from azaion_assets.lib.labels.classes import MODE_OFFSETS, NUM_SLOTS

CARD_FORMAT = "azaion-model-card"
CARD_VERSION = 1
KEY_PREFIX = "azaion."
ROW = ["x1", "y1", "x2", "y2", "score", "class"]
CARD_FIELDS = (  # every top-level field of a card, sha256 included
    "format",
    "card_version",
    "input",
    "letterbox",
    "preprocessing",
    "output",
    "postprocessing",
    "score_threshold",
    "classes",
    "class_slots",
    "training_imgsz",
    "export_imgsz",
    "weights_sha256",
    "dataset_partition",
    "reference",
    "sha256",
)


class CardError(ValueError):
    """The ONNX file is not the end-to-end detector the card describes."""


def _shape(value) -> list[int | str]:
    dims = value.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]


def _dtype(value) -> str:
    import onnx

    return onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name


def _io(onnx_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Input and output of the file itself: name, shape, dtype."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        raise CardError(f"{onnx_path}: expected one input and one output")
    (inp,), (out,) = model.graph.input, model.graph.output
    shape, out_shape = _shape(inp), _shape(out)
    if len(shape) != 4 or shape[0] != 1 or shape[1] != 3 or shape[2] != shape[3]:
        raise CardError(f"{onnx_path}: expected a fixed 1x3xSxS input, the file has {shape}")
    if not isinstance(shape[2], int) or shape[2] <= 0:
        raise CardError(f"{onnx_path}: expected a fixed input size, the file has {shape}")
    if len(out_shape) != 3 or out_shape[0] != 1 or out_shape[2] != len(ROW):
        raise CardError(
            f"{onnx_path}: expected the NMS-free (1, N, 6) output, the file has {out_shape}"
        )
    return (
        {"name": inp.name, "shape": shape, "dtype": _dtype(inp)},
        {"name": out.name, "shape": out_shape, "dtype": _dtype(out)},
    )


def build_card(
    onnx_path: Path,
    *,
    slot_names: dict[int, str],
    training_imgsz: int,
    dataset_partition: str,
    score_threshold: float,
    weights_sha256: str,
) -> dict[str, Any]:
    """The card of an exported detector; input and output are read from the file itself."""
    inp, out = _io(Path(onnx_path))
    size = int(inp["shape"][2])
    if set(slot_names) != set(range(NUM_SLOTS)):
        raise CardError(f"expected names for all {NUM_SLOTS} class slots")
    modes = ", ".join(f"Id+{offset} {mode}" for mode, offset in MODE_OFFSETS.items())
    return {
        "format": CARD_FORMAT,
        "card_version": CARD_VERSION,
        "input": {
            **inp,
            "layout": "NCHW",
            "color_order": "RGB",
            "scaling": "float32 = uint8 / 255, so values lie in [0, 1]; no mean or std",
        },
        "letterbox": {
            "size": size,
            "square": True,
            "keep_aspect": True,
            "upscale": True,
            "scale": "gain = min(size / h, size / w)",
            "resized": "new_w = round(w * gain), new_h = round(h * gain) (at least 1)",
            "interpolation": "bilinear (OpenCV INTER_LINEAR); skipped when already that size",
            "centred": True,
            "padding": "top = round((size - new_h) / 2 - 0.1), "
            "left = round((size - new_w) / 2 - 0.1); bottom and right take the rest",
            "pad_value": [PAD_VALUE, PAD_VALUE, PAD_VALUE],
        },
        "preprocessing": [
            "decode the image to 8-bit BGR as OpenCV imdecode(IMREAD_COLOR) does",
            "letterbox to size x size (see letterbox)",
            "convert BGR to RGB",
            "HWC to CHW, add the batch axis: 1x3xSxS",
            "convert to float32 and divide by 255",
        ],
        "output": {
            **out,
            "row": ROW,
            "order": "best first (score descending)",
            "coordinates": "input pixels of the letterboxed size x size image",
            "class": "the class slot, as a float; see classes",
            "nms": "none needed: the end-to-end one-to-one head emits one box per object",
        },
        "postprocessing": [
            "keep rows with score > score_threshold (strictly greater)",
            "x = (x - left) / (new_w / w), y = (y - top) / (new_h / h)",
            "clip x to [0, w] and y to [0, h] (original image pixels)",
        ],
        "score_threshold": float(score_threshold),
        "classes": {str(slot): slot_names[slot] for slot in range(NUM_SLOTS)},
        "class_slots": f"{modes} of each classes.json Id; unused slots are Class-N",
        "training_imgsz": int(training_imgsz),
        "export_imgsz": size,
        "weights_sha256": weights_sha256,
        "dataset_partition": dataset_partition,
        "reference": (
            "`azaion-assets predict azaion.onnx IMAGE...` runs exactly this contract; "
            "azaion_assets/lib/evaluation/preprocess.py implements every step. "
            "YOLO(azaion.pt).predict matches only with "
            f"imgsz={size}, rect=False, nms=False (the end-to-end head)."
        ),
    }


def embed_card(onnx_path: Path, card: dict[str, Any]) -> Path:
    """Write ``card`` into the ONNX metadata (replacing an earlier card), crash-safely.

    Only ``metadata_props`` change; the graph and weights are written back as they were.
    """
    import onnx

    onnx_path = Path(onnx_path)
    model = onnx.load(str(onnx_path), load_external_data=False)
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(KEY_PREFIX)]
    fields = [(f"{KEY_PREFIX}{k}", json.dumps(v)) for k, v in card.items() if k != "sha256"]
    del model.metadata_props[:]
    for key, value in kept + fields:
        model.metadata_props.add(key=key, value=value)
    with replacing(onnx_path) as handle:
        handle.write(model.SerializeToString())
    return onnx_path


def read_card(onnx_path: Path) -> dict[str, Any] | None:
    """The card embedded in an ONNX file, or None if it has none."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    card = {
        p.key[len(KEY_PREFIX) :]: json.loads(p.value)
        for p in model.metadata_props
        if p.key.startswith(KEY_PREFIX)
    }
    return card or None


def card_json(onnx_path: Path, card: dict[str, Any]) -> dict[str, Any]:
    """The card to publish beside the file: with the sha256 of the final ONNX (embed first)."""
    return {**card, "sha256": sha256(Path(onnx_path))}


def card_from_record(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The card inside a publish record (``azaion.onnx.json``), without the publish fields;
    None for a record written before cards existed."""
    if not record or record.get("format") != CARD_FORMAT:
        return None
    return {k: v for k, v in record.items() if k in CARD_FIELDS}


def class_names(card: dict[str, Any] | None) -> dict[int, str]:
    """Slot -> name from a card; ``Class-N`` for every slot a card does not name."""
    names = {slot: f"Class-{slot}" for slot in range(NUM_SLOTS)}
    for slot, name in ((card or {}).get("classes") or {}).items():
        names[int(slot)] = str(name)
    return names
