"""The door agrees with the trainer: every image it accepts, Ultralytics' own ``imread`` (as the
dataset loader calls it) reads, at the size the door reported, and without turning it by an
EXIF orientation (the same pixels as a read that ignores orientation).

2,000 images generated over every accepted format, with the options encoders and cameras use
(progressive and subsampled JPEGs, interlaced and 16-bit PNGs, lossless WebPs, compressed and
multi-page TIFFs, palette BMPs), EXIF orientations in each format's own place, more than one
frame, text chunks, and a fifth of them damaged (cut, flipped, grown). Derandomised: CI replays
the same images. Whatever is accepted is written to a file and read by the trainer's reader.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from azaion_assets.lib.stream.image_door import judge_image
from azaion_assets.lib.stream.image_judge import ImageJudge
from azaion_assets.lib.stream.limits import DEFAULT_LIMITS
from azaion_assets.lib.stream.reject import Reject
from azaion_assets.lib.stream.trainer_reader import read_like_trainer
from azaion_assets_tests.lib.stream.test_image_door import _chunk

IMAGES = 2_000
pytestmark = pytest.mark.slow  # about half a minute: `make test` runs it, test-fast does not
MODES = {
    "JPEG": ["RGB", "L", "CMYK"],
    "PNG": ["RGB", "RGBA", "L", "LA", "P", "1", "I;16"],
    "BMP": ["RGB", "L", "P", "1", "RGBA"],
    "WEBP": ["RGB", "RGBA"],
    "TIFF": ["RGB", "L", "CMYK", "I;16", "RGBA", "1", "P"],
}


def _picture(rng: random.Random, mode: str, width: int, height: int) -> Image.Image:
    """A noisy gradient (compressible, not flat) in ``mode``."""
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 40, (height, width, 3))
    rgb = np.clip(ramp + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(rgb)
    if mode == "I;16":
        return Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    if mode == "P":
        return img.quantize(rng.choice([2, 16, 256]))
    return img.convert(mode)


def _exif(orientation: int, big_endian: bool = False) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes() if not big_endian else _big_endian_exif(orientation)


def _big_endian_exif(orientation: int) -> bytes:
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    return b"Exif\x00\x00MM" + struct.pack(">HI", 42, 8) + ifd + struct.pack(">I", 0)


def _with_app1(jpeg: bytes, body: bytes) -> bytes:
    """``jpeg`` with an APP1 segment of ``body`` put right after its start marker."""
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def _png_with(png: bytes, chunk: bytes, after_idat: bool) -> bytes:
    at = png.rfind(b"IEND") - 4 if after_idat else 8 + 25  # before IEND, or right after IHDR
    return png[:at] + chunk + png[at:]


def _generated(rng: random.Random) -> tuple[bytes, str]:
    """One image and a description of how it was made."""
    fmt = rng.choice(list(MODES))
    mode = rng.choice(MODES[fmt])
    width, height = rng.randint(8, 160), rng.randint(8, 160)
    if rng.random() < 0.05:
        width = height * rng.choice([9, 12])  # a sliver past the aspect limit
    img = _picture(rng, mode, width, height)
    options: dict = {}
    how = [fmt, mode, f"{width}x{height}"]
    orientation = rng.choice([None] * 24 + [1, 2, 3, 4, 5, 6, 7, 8])
    if orientation is not None and fmt != "BMP":
        options["exif"] = _exif(orientation)
        how.append(f"orientation {orientation}")
    if fmt == "JPEG":
        options |= {
            "quality": rng.randint(20, 95),
            "progressive": rng.random() < 0.3,
            "optimize": rng.random() < 0.3,
        }
        if mode != "L":
            options["subsampling"] = rng.choice([0, 1, 2])
    elif fmt == "PNG":
        options["compress_level"] = rng.randint(0, 9)
    elif fmt == "WEBP":
        options |= {"lossless": rng.random() < 0.5, "quality": rng.randint(30, 95)}
    elif fmt == "TIFF":
        choices = [None, "tiff_lzw", "tiff_deflate", "packbits"]
        if mode in ("RGB", "L"):
            choices.append("jpeg")
        if mode == "1":
            choices.append("group4")
        options["compression"] = rng.choice(choices)
    frames = fmt in ("PNG", "WEBP", "TIFF") and rng.random() < 0.08
    if frames:
        other = _picture(rng, mode, width, height).rotate(90, expand=False)
        options |= {"save_all": True, "append_images": [other]}
        how.append("2 frames")
    buffer = io.BytesIO()
    try:
        img.save(buffer, fmt, **options)
    except (OSError, ValueError, KeyError):  # a combination the encoder refuses
        buffer = io.BytesIO()
        img.save(buffer, fmt)
        how.append("plain")
    data = buffer.getvalue()
    data, extra = _oddities(rng, fmt, data)
    return data, " ".join(how + extra)


def _oddities(rng: random.Random, fmt: str, data: bytes) -> tuple[bytes, list[str]]:
    """What cameras and attackers add: EXIF in odd places, text chunks, damage."""
    how = []
    if fmt == "JPEG" and rng.random() < 0.15:
        orientation = rng.choice([1, 3, 6, 8])
        body = _exif(orientation, big_endian=rng.random() < 0.5)
        if rng.random() < 0.3:
            body = rng.choice([b"Exif\x00\xff", b"exif\x00\x00"]) + body[6:]
        data = _with_app1(data, body)
        how.append(f"extra APP1 {body[:6]!r} orientation {orientation}")
    if fmt == "PNG" and rng.random() < 0.15:
        kind, payload = rng.choice(
            [
                (b"tEXt", b"Comment\x00" + b"x" * rng.choice([100, 70_000])),
                (b"zTXt", b"Comment\x00\x00" + zlib.compress(b"x" * 2_000_000)),
                (b"eXIf", _exif(rng.choice([3, 6]))[6:]),
                (b"eXIf", _exif(6)),  # with the "Exif" prefix the PNG spec leaves out
                (b"prVt", b""),
            ]
        )
        data = _png_with(data, _chunk(kind, payload), after_idat=rng.random() < 0.5)
        how.append(f"chunk {kind.decode()} of {len(payload)} bytes")
    roll = rng.random()
    if roll < 0.07:
        data = data[: rng.randrange(1, len(data))]
        how.append("cut")
    elif roll < 0.14:
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        data = bytes(flipped)
        how.append("bits flipped")
    elif roll < 0.2:
        data = data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        how.append("bytes appended")
    return data, how


def _trainer_read(folder: Path, data: bytes, ext: str, index: int, flags=cv2.IMREAD_COLOR):
    """The dataset loader's read of a stored image: Ultralytics' ``imread``, flags and all."""
    from ultralytics.utils.patches import imread

    path = folder / f"image_{index}{ext}"
    path.write_bytes(data)
    return imread(str(path), flags=flags)


def test_every_image_the_door_accepts_the_trainer_reads_at_the_size_it_reported(tmp_path):
    rng = random.Random(28)
    accepted: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for index in range(IMAGES):
        data, how = _generated(rng)
        try:
            judged = judge_image(data, DEFAULT_LIMITS)
        except Reject as exc:
            refused[str(exc).split(":")[0]] += 1
            continue
        accepted[judged.ext] += 1
        im = _trainer_read(tmp_path, data, judged.ext, index)
        assert im is not None, f"accepted, yet the trainer reads nothing: {how}"
        assert im.shape[:2] == (judged.height, judged.width), f"{how}: {im.shape}"
        ours = read_like_trainer(data, judged.ext)  # the door's copy of the reader agrees
        assert ours is not None and ours.shape == im.shape, how
        if judged.ext != ".tif":  # and it did not turn the image (libtiff turns by any flags)
            upright = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
            as_stored = _trainer_read(tmp_path, data, judged.ext, index, upright)
            assert as_stored is not None and np.array_equal(im, as_stored), f"turned: {how}"
    assert sum(accepted.values()) + sum(refused.values()) == IMAGES
    assert all(accepted[ext] >= 100 for ext in (".jpg", ".png", ".bmp", ".webp", ".tif")), (
        accepted,
        refused,
    )
    assert sum(refused.values()) >= 300, refused  # the hostile part is refused, not vacuous
    assert refused["image with EXIF orientation 6 (JPEG)"] > 0


def test_the_judge_s_child_gives_the_door_s_verdicts():
    """The same images through the child process the ingest uses, within its budget."""
    rng = random.Random(7)
    with ImageJudge(DEFAULT_LIMITS.image_seconds * 10, DEFAULT_LIMITS.image_memory) as judge:
        for _ in range(200):
            data, how = _generated(rng)
            try:
                here = judge_image(data, DEFAULT_LIMITS)
            except Reject as exc:
                here = str(exc)
            try:
                there = judge_image(data, DEFAULT_LIMITS, judge)
            except Reject as exc:
                there = str(exc)
            assert here == there, how
        assert judge.started == 1
