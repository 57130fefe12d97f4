"""Synthetic annotated aerial-style images with known boxes.

Used by the demo, the tests and the benchmarks: a seeded generator draws simple shapes (one
shape and colour per class) on a textured ground, so a tiny detector learns them in a few epochs
and every box is known exactly. Published samples can be frames of a few videos
(``frame_source``), so that the split by source has something to group.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from azaion_assets.lib.config.datatree import AnnotationDir
from azaion_assets.lib.fsio.atomic import atomic_write_bytes, atomic_write_text
from azaion_assets.lib.labels.yolo_format import format_label

# slot -> (shape, colour): ArmorVehicle, Truck, MilitaryMan, ArmorVehicle(Wint)
CLASS_STYLES: dict[int, tuple[str, tuple[int, int, int]]] = {
    0: ("rect", (200, 40, 40)),
    1: ("rect", (40, 60, 200)),
    6: ("ellipse", (240, 220, 40)),
    20: ("ellipse", (245, 245, 245)),
}

Box = tuple[int, float, float, float, float]
FRAME_TICKS = 400_000  # one frame at 25 fps, in the contract's 100-ns ticks


@dataclass(frozen=True)
class Sample:
    name: str
    image: bytes
    boxes: list[Box]


SCENES = {"summer": (60, 120), "winter": (185, 235)}  # the ground's brightness range


def render(
    rng: random.Random, width: int, height: int, max_objects: int = 3, scene: str = "summer"
) -> tuple[bytes, list[Box]]:
    """One JPEG image and its normalised YOLO boxes. ``scene``: the ground, dark fields or
    snow: a detector that only saw one does worse on the other (the monitor's demo and tests)."""
    low, high = SCENES[scene]
    ground = tuple(rng.randint(low, high) for _ in range(3))
    img = Image.new("RGB", (width, height), ground)  # type: ignore[arg-type]
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(20, 40)):  # texture: fields and tracks, not objects
        x, y = rng.randint(0, width), rng.randint(0, height)
        shade = tuple(max(0, min(255, g + rng.randint(-25, 25))) for g in ground)
        draw.rectangle((x, y, x + rng.randint(5, 30), y + rng.randint(5, 30)), fill=shade)  # type: ignore[arg-type]
    img = img.filter(ImageFilter.GaussianBlur(1.5))
    draw = ImageDraw.Draw(img)
    boxes: list[Box] = []
    for _ in range(rng.randint(1, max_objects)):
        cls = rng.choice(sorted(CLASS_STYLES))
        shape, colour = CLASS_STYLES[cls]
        w, h = rng.randint(width // 8, width // 3), rng.randint(height // 8, height // 3)
        x0, y0 = rng.randint(0, width - w), rng.randint(0, height - h)
        box = (x0, y0, x0 + w - 1, y0 + h - 1)
        (draw.rectangle if shape == "rect" else draw.ellipse)(
            box, fill=colour, outline=(20, 20, 20)
        )
        boxes.append((cls, (x0 + w / 2) / width, (y0 + h / 2) / height, w / width, h / height))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue(), boxes


def samples(
    count: int,
    seed: int = 0,
    width: int = 160,
    height: int = 128,
    prefix: str = "synthetic",
    scene: str = "summer",
):
    """Yield ``count`` deterministic samples."""
    rng = random.Random(seed)
    for i in range(count):
        image, boxes = render(rng, width, height, scene=scene)
        yield Sample(name=f"{prefix}_{seed:04d}_{i:06d}", image=image, boxes=boxes)


def frame_source(prefix: str, index: int, count: int, videos: int) -> tuple[str, int]:
    """The video and time of sample ``index`` of ``count``, dealt in runs of consecutive frames
    to ``videos`` videos named ``{prefix}_flight_NN.mp4`` (the names do not depend on the seed,
    so the split each video gets is known: the demo's 12 cover train, valid and test)."""
    video = index * videos // count
    first = -(-video * count // videos)  # the first index of this video
    return f"{prefix}_flight_{video:02d}.mp4", (index - first) * FRAME_TICKS


def write_samples(target: AnnotationDir, count: int, seed: int = 0, **kwargs) -> list[Sample]:
    """Write samples as ``images/{name}.jpg`` and ``labels/{name}.txt``, atomically."""
    target.create()
    written = []
    for sample in samples(count, seed=seed, **kwargs):
        atomic_write_text(target.labels / f"{sample.name}.txt", format_label(sample.boxes))
        atomic_write_bytes(target.images / f"{sample.name}.jpg", sample.image)
        written.append(sample)
    return written


def label_path(target: AnnotationDir, name: str) -> Path:
    return target.labels / f"{name}.txt"
