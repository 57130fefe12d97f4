"""The image judge: images decoded by the trainer's reader in a child process, within the time
and memory budget, each hostile case quarantined with a reason that names what it broke
(issue 28: chunk floods, oversized chunks, EXIF orientations, text bombs, more frames)."""

from __future__ import annotations

import os
import signal
import struct
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

from azaion_assets.lib.stream import image_judge
from azaion_assets.lib.stream.contract import decode_message, pack
from azaion_assets.lib.stream.image_door import judge_image
from azaion_assets.lib.stream.image_judge import ImageJudge, JudgeError
from azaion_assets.lib.stream.limits import DEFAULT_LIMITS, MessageLimits
from azaion_assets.lib.stream.reject import Reject
from azaion_assets.lib.stream.trainer_reader import Judged
from azaion_assets_tests.lib.stream.test_contract import _fields
from azaion_assets_tests.lib.stream.test_image_door import _chunk, _saved

MIB = 1 << 20


@pytest.fixture(scope="module")
def png() -> bytes:
    return _saved(Image.new("RGB", (64, 48), (10, 20, 30)), "PNG")


def _before_idat(png: bytes, *chunks: bytes) -> bytes:
    return png[:33] + b"".join(chunks) + png[33:]  # right after the signature and IHDR


def _after_idat(png: bytes, *chunks: bytes) -> bytes:
    at = png.rfind(b"IEND") - 4
    return png[:at] + b"".join(chunks) + png[at:]


@pytest.fixture(scope="module")
def judge():
    """One judge for the module, at the default budget, as the ingest runs it."""
    with ImageJudge(DEFAULT_LIMITS.image_seconds, DEFAULT_LIMITS.image_memory) as shared:
        yield shared


def _verdict(image: bytes, judge: ImageJudge | None, limits: MessageLimits = DEFAULT_LIMITS):
    try:
        return judge_image(image, limits, judge)
    except Reject as exc:
        return str(exc)


def test_a_png_flooded_with_tiny_chunks_is_cut_off_at_the_time_budget(png, judge):
    """32 MB of empty private chunks: 13 s and 288 MiB for Pillow in the ingest, before."""
    flood = _before_idat(png, _chunk(b"prVt", b"") * (32_000_000 // 12))
    assert _verdict(png, judge) == Judged(".png", 64, 48)
    started = judge.started
    assert (
        _verdict(flood, judge) == "image over STREAM_IMAGE_SECONDS: not judged within 0.6 s of CPU"
    )
    assert judge.started == started + 1  # the stuck child was replaced
    assert _verdict(png, judge) == Judged(".png", 64, 48)  # and the next image is judged


def test_a_chunk_over_libpng_s_limit_is_refused_before_the_pixels_and_read_after(png, judge):
    """OpenCV returns nothing for a PNG with an 8.5 MB chunk before its pixels (the trainer
    failed with "Image Not Found"); after them, it reads the image."""
    for kind in (b"iTXt", b"prVt"):
        big = _chunk(kind, b"Comment\x00\x00\x00\x00\x00" + b"x" * 8_500_000)
        assert _verdict(_before_idat(png, big), judge) == (
            "image unreadable by the trainer's reader (OpenCV): PNG 64x48"
        )
        assert _verdict(_after_idat(png, big), judge) == Judged(".png", 64, 48)
    text = _chunk(b"tEXt", b"Comment\x00" + b"x" * 8_500_000)  # libpng skips this one and reads
    assert _verdict(_before_idat(png, text), judge) == Judged(".png", 64, 48)


def test_a_compressed_text_bomb_has_a_reason_of_its_own(png, judge):
    bomb = _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"x" * 50_000_000))
    assert _verdict(_before_idat(png, bomb), judge) == (
        "image with a compressed text chunk that inflates past 1 MB (PNG): a text bomb, "
        "refused unread"
    )


def test_what_the_header_hides_is_caught_by_the_memory_limit_of_the_child(png):
    """30 text chunks of 900 kB pass every header check; Pillow keeps them all in memory."""
    texts = _before_idat(
        png, *(_chunk(b"tEXt", b"C%d\x00" % i + b"x" * 900_000) for i in range(30))
    )
    with ImageJudge(5, 16 * MIB) as tight:
        assert _verdict(texts, tight) == (
            "image over STREAM_IMAGE_MEMORY_MB: decoding PNG header ran out of memory, over 16 MiB"
        )
        assert _verdict(png, tight) == Judged(".png", 64, 48)  # the limit was per image
    with ImageJudge(5, DEFAULT_LIMITS.image_memory) as roomy:
        assert _verdict(texts, roomy) == Judged(".png", 64, 48)


def test_the_largest_image_fits_the_default_memory_budget_and_a_smaller_budget_refuses_it():
    """A 4096x4096 lossless PNG and WebP: 190-240 ms and 64 MiB in Pillow, in the ingest's own
    process, before; Pillow's open of the WebP alone took 287 MiB (its header is read here)."""
    ramp = np.tile(np.arange(4096, dtype=np.uint16).astype(np.uint8), (4096, 1))
    picture = Image.fromarray(np.dstack([ramp, ramp.T, ramp]))
    big = _saved(picture, "PNG", compress_level=1)
    webp = _saved(picture, "WEBP", lossless=True, method=0)
    with ImageJudge(30, DEFAULT_LIMITS.image_memory) as roomy:  # time is not what this checks
        assert judge_image(big, DEFAULT_LIMITS, roomy) == Judged(".png", 4096, 4096)
        assert judge_image(webp, DEFAULT_LIMITS, roomy) == Judged(".webp", 4096, 4096)
    small = MessageLimits(image_memory_mb=100)
    assert _verdict(big, None, small) == (
        "image over STREAM_IMAGE_MEMORY_MB: decoding PNG 4096x4096 RGB takes about 128 MiB, "
        "over 100 MiB"
    )


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_an_exif_orientation_is_refused_in_every_format(fmt, judge):
    """OpenCV turns the image as it reads it (160x128 became 128x160), its boxes do not turn."""
    exif = Image.Exif()
    exif[0x0112] = 6
    image = _saved(Image.new("RGB", (160, 128), (90, 90, 90)), fmt, exif=exif.tobytes())
    assert _verdict(image, judge) == (
        f"image with EXIF orientation 6 ({fmt}): the trainer's reader shows it turned 90°; "
        "the boxes' orientation is unknown"
    )
    exif[0x0112] = 1
    upright = _saved(Image.new("RGB", (160, 128), (90, 90, 90)), fmt, exif=exif.tobytes())
    assert _verdict(upright, judge) == Judged(
        f".{fmt.lower()}".replace("jpeg", "jpg").replace("tiff", "tif"), 160, 128
    )


def test_two_exif_segments_in_a_jpeg_are_refused_unread():
    exif = Image.Exif()
    exif[0x0112] = 1
    jpeg = _saved(Image.new("RGB", (64, 48)), "JPEG", exif=exif.tobytes())
    turned = Image.Exif()
    turned[0x0112] = 6
    body = turned.tobytes()
    second = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]
    assert _verdict(second, None) == (
        "image with EXIF the door cannot read (JPEG): two EXIF segments, which readers take "
        "differently"
    )


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_an_image_of_more_than_one_frame_is_refused(fmt, judge):
    frames = [Image.new("RGB", (64, 48), (i * 60, 0, 0)) for i in range(3)]
    image = _saved(frames[0], fmt, save_all=True, append_images=frames[1:])
    assert _verdict(image, judge) == (
        f"image of 3 frames or pages ({fmt}): the trainer reads one, the annotator's is unknown"
    )


def test_a_tiff_with_alpha_is_refused_since_the_trainer_sees_other_pixels(judge):
    image = _saved(Image.new("RGBA", (64, 48), (200, 10, 10, 0)), "TIFF")
    assert _verdict(image, judge) == (
        "unsupported image mode RGBA (TIFF): the trainer's reader (libtiff) multiplies the "
        "colours by the alpha, so it sees other pixels"
    )


def test_a_jpeg_of_millions_of_markers_or_fill_bytes_is_refused_at_once():
    """Walking 8 million 4-byte segments in Python took seconds; the walk stops at 5,000."""
    jpeg = _saved(Image.new("RGB", (64, 48)), "JPEG")
    segments = jpeg[:2] + b"\xff\xe0\x00\x02" * 8_000_000 + jpeg[2:]
    assert _verdict(segments, None) == "image truncated or corrupt: JPEG (more than 5000 markers)"
    filled = jpeg[:2] + b"\xff" * 32_000_000 + jpeg[2:]  # fill bytes: crossed at C speed
    assert _verdict(filled, None) == Judged(".jpg", 64, 48)


def test_a_child_that_dies_judging_an_image_is_reported_and_replaced(png):
    """A decoder that crashes on an image would crash the trainer too: that image is refused.
    A child that died between images (killed from outside) costs no image anything."""
    flood = _before_idat(png, _chunk(b"prVt", b"") * 2_000_000)
    with ImageJudge(30, DEFAULT_LIMITS.image_memory) as judge:
        assert _verdict(png, judge) == Judged(".png", 64, 48)
        child = judge._child
        assert child is not None
        killer = threading.Timer(0.3, os.kill, (child.pid, signal.SIGKILL))
        killer.start()
        reason = _verdict(flood, judge)
        killer.join()
        assert isinstance(reason, str)
        assert reason.startswith("image reader died judging it (the image judge ended early")
        assert _verdict(png, judge) == Judged(".png", 64, 48) and judge.started == 2
        between = judge._child
        assert between is not None
        os.kill(between.pid, signal.SIGKILL)
        between._proc.wait()
        assert _verdict(png, judge) == Judged(".png", 64, 48) and judge.started == 3


def test_a_plain_jpeg_never_starts_the_child():
    jpeg = _saved(Image.new("RGB", (64, 48)), "JPEG")
    with ImageJudge(5, DEFAULT_LIMITS.image_memory) as judge:
        assert judge_image(jpeg, DEFAULT_LIMITS, judge) == Judged(".jpg", 64, 48)
        assert judge.started == 0


def test_the_budget_is_cpu_time_and_a_starved_child_is_still_cut_off_by_the_wall(png):
    """A busy machine slows the child's clock, not its CPU: the verdict waits for CPU, up to
    WALL_FACTOR budgets of wall time (a child stopped outright gets none)."""
    with ImageJudge(0.2, DEFAULT_LIMITS.image_memory) as judge:
        assert _verdict(png, judge) == Judged(".png", 64, 48)
        child = judge._child
        assert child is not None
        os.kill(child.pid, signal.SIGSTOP)
        reason = _verdict(png, judge)
        assert isinstance(reason, str)
        assert reason.startswith("image over STREAM_IMAGE_SECONDS: not judged within 0.8 s (0.0")
        assert _verdict(png, judge) == Judged(".png", 64, 48) and judge.started == 2


def test_a_judge_that_cannot_start_fails_the_run_not_the_message(png, monkeypatch):
    """No image could be judged at all: quarantining each would lose them to a broken install."""
    monkeypatch.setattr(image_judge, "__file__", "/nonexistent/image_judge.py")
    body = pack(_fields(png, ext=".png"))
    broken = ImageJudge(5, DEFAULT_LIMITS.image_memory)
    with broken, pytest.raises(JudgeError, match="the image judge ended early"):
        decode_message(body, {"AnnotationStatus": 10}, judge=broken)
