"""Images at the door: decoded whole within the pixel and aspect limits, or quarantined saying why.

The hostile cases are the issue's (16, item 2): a JPEG cut short or broken in its scan, a
13000x13000 PNG of 20 KB, a 150,000,000x1 PNG of a few dozen bytes, a sliver, and what libjpeg
recovers from (accepted, as docs/message-contract.md says).
"""

import io
import random
import struct
import zlib

import pytest
from PIL import Image, ImageFile

from azaion_assets.dev.synthetic import render
from azaion_assets.lib.stream.contract import decode_message, pack
from azaion_assets.lib.stream.events import AnnotationEvent, Rejected
from azaion_assets.lib.stream.image_door import check_image
from azaion_assets.lib.stream.limits import DEFAULT_LIMITS, MessageLimits
from azaion_assets.lib.stream.message_fields import Reject


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return render(random.Random(1), 640, 480)[0]


def _reason(image: bytes, limits: MessageLimits = DEFAULT_LIMITS) -> str:
    with pytest.raises(Reject) as caught:
        check_image(image, limits)
    return str(caught.value)


def _saved(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def _png(width: int, height: int, idat: bytes, depth: int = 8, colour: int = 2) -> bytes:
    """A PNG built chunk by chunk: a header may claim any size, whatever the data holds."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def _one_colour_png(width: int, height: int) -> bytes:
    """A whole, valid 1-bit PNG of one colour: tiny in bytes whatever its size in pixels."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte, then the row's bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return _png(width, height, idat, depth=1, colour=0)


@pytest.mark.parametrize(
    ("fmt", "mode", "ext"),
    [
        ("JPEG", "RGB", ".jpg"),
        ("JPEG", "CMYK", ".jpg"),
        ("PNG", "RGBA", ".png"),
        ("PNG", "I;16", ".png"),
        ("BMP", "RGB", ".bmp"),
        ("WEBP", "RGB", ".webp"),
        ("TIFF", "RGB", ".tif"),
    ],
)
def test_a_whole_image_in_a_format_the_trainer_reads_is_accepted(fmt, mode, ext):
    assert check_image(_saved(Image.new(mode, (32, 24)), fmt)) == ext


def test_a_4k_frame_is_accepted_under_the_default_limits():
    frame = render(random.Random(2), 3840, 2160)[0]
    assert check_image(frame) == ".jpg"


@pytest.mark.parametrize("keep", [0.5, 0.9, -2])
def test_a_jpeg_cut_short_is_quarantined(jpeg, keep):
    cut = jpeg[: int(len(jpeg) * keep)] if keep > 0 else jpeg[:keep]  # -2: only its end marker
    assert _reason(cut) == (
        "image truncated or corrupt: JPEG (data ends inside a scan, before the end marker)"
    )


@pytest.mark.parametrize(
    ("marker", "reason"),
    [
        (b"\xff\xd8", "marker 0xFFD8 where a segment belongs"),  # a start of image
        (b"\xff\xda", "data ends inside segment 0xFFDA"),  # a start of scan, its length garbage
        (b"\xff" * 64, "marker 0xFFF0 where a segment belongs"),  # fill, then a data byte
    ],
)
def test_a_jpeg_whose_scan_breaks_is_quarantined(jpeg, marker, reason):
    middle = (jpeg.index(b"\xff\xda") + len(jpeg)) // 2
    broken = jpeg[:middle] + marker + jpeg[middle + len(marker) :]
    assert _reason(broken) == f"image truncated or corrupt: JPEG ({reason})"


def test_a_jpeg_is_checked_without_decoding_it(jpeg, monkeypatch):
    """Its structure is walked (``jpeg_structure``): no pixel is decoded, not even at 1/8."""

    def never(*_args):
        raise AssertionError("decoded a JPEG")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    assert check_image(jpeg) == ".jpg"
    with pytest.raises(Reject):
        check_image(jpeg[:-2])


@pytest.mark.parametrize("damage", ["zeroed", "end marker early", "bits flipped"])
def test_scan_damage_libjpeg_recovers_from_is_accepted_as_documented(jpeg, damage):
    """libjpeg resynchronises and only warns; Pillow and OpenCV read a garbled but whole image.
    No marker is out of place, so the structure is whole."""
    middle = (jpeg.index(b"\xff\xda") + len(jpeg)) // 2
    data = bytearray(jpeg)
    if damage == "zeroed":
        data[middle : middle + 500] = bytes(500)
    elif damage == "end marker early":
        data[middle : middle + 2] = b"\xff\xd9"
    else:
        for offset in (middle, middle + 97, middle + 1001):
            data[offset] ^= 0x10
    assert check_image(bytes(data)) == ".jpg"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_13000x13000_png_is_judged_from_its_header_and_never_decoded(monkeypatch):
    bomb = _one_colour_png(13_000, 13_000)
    assert len(bomb) < 30_000  # 169 megapixels in about 20 KB

    def never(*_args):
        raise AssertionError("decoded a bomb")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    assert _reason(bomb) == (
        "image over STREAM_MAX_IMAGE_PIXELS: 13000x13000 is 169,000,000 pixels, "
        "more than 16,777,216"
    )


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_150000000x1_png_header_is_quarantined():
    sliver = _png(150_000_000, 1, zlib.compress(b""))
    assert len(sliver) < 100  # the was 69 bytes
    assert _reason(sliver).startswith("image over STREAM_MAX_IMAGE_PIXELS: 150000000x1 is ")


def test_the_aspect_ratio_is_limited_and_configurable():
    strip = _one_colour_png(1000, 100)
    assert _reason(strip) == "image over STREAM_MAX_IMAGE_ASPECT: 1000x100 is 10.0:1, more than 8:1"
    assert check_image(strip, MessageLimits(max_aspect=10)) == ".png"


def test_the_pixel_limit_is_configurable(jpeg):
    assert check_image(jpeg, MessageLimits(max_pixels=640 * 480)) == ".jpg"
    reason = _reason(jpeg, MessageLimits(max_pixels=640 * 480 - 1))
    assert reason.startswith("image over STREAM_MAX_IMAGE_PIXELS: 640x480 is 307,200 pixels")
    cut = _reason(jpeg[: len(jpeg) // 2], MessageLimits(max_pixels=640 * 480 - 1))
    assert cut.startswith("image over STREAM_MAX_IMAGE_PIXELS: 640x480")  # the header first


def test_a_jpeg_of_components_opencv_does_not_read_is_quarantined():
    grey = bytearray(_saved(Image.new("L", (32, 24)), "JPEG"))
    sof = grey.index(b"\xff\xc0")
    grey[sof + 9] = 2  # two components: no colour space libjpeg converts from
    assert _reason(bytes(grey)) == "unsupported image mode: 2 components (JPEG): OpenCV reads none"


def test_an_image_the_trainer_would_drop_is_quarantined():
    assert _reason(_one_colour_png(100, 9)) == (
        "image under 10 pixels a side: 100x9 (the trainer drops it)"
    )
    float_tiff = _saved(Image.new("F", (32, 24)), "TIFF")  # OpenCV reads nothing from it
    assert _reason(float_tiff) == "unsupported image mode F (TIFF): OpenCV reads none"
    assert _reason(_saved(Image.new("RGB", (32, 24)), "GIF")) == "unsupported image format GIF"


def test_the_decoder_applies_the_limits_it_is_given(jpeg):
    fields = [
        1_765_000_000,
        "frame_1",
        "video.mp4",
        0,
        ".jpg",
        "[]",
        jpeg,
        20,
        "v@azaion.local",
        1,
        10,
    ]
    body, props = pack(fields), {"AnnotationStatus": 10}
    assert isinstance(decode_message(body, props).event, AnnotationEvent)
    small = MessageLimits(max_pixels=1000)
    rejected = decode_message(body, props, message_limits=small).event
    assert isinstance(rejected, Rejected) and rejected.name == "frame_1"
    assert rejected.reason.startswith("image over STREAM_MAX_IMAGE_PIXELS: 640x480")


def test_importing_the_trainer_leaves_truncated_images_refused(runtime_dir):
    """Pillow pads a cut image when LOAD_TRUNCATED_IMAGES is set; nothing we load may set it."""
    from azaion_assets.lib.training.offline import prepare_ultralytics

    prepare_ultralytics(runtime_dir)
    import ultralytics.data.build  # noqa: F401  the dataloaders

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
