"""One materialisation's pictures fit their budget: smaller first, then fewer, never cut."""

import base64
import re

import cv2
import numpy as np
import pytest

from azaion_assets.lib.pictures.embed import Picture, _encoded, embed, png

_URI = re.compile(r"!\[(?P<title>[^\]]*)\]\(data:(?P<mime>image/\w+);base64,(?P<data>[^)]*)\)")


def _noisy(seed: int, width: int = 320, height: int = 240) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


def _decoded(markdown: str) -> list[tuple[str, str, np.ndarray]]:
    out = []
    for m in _URI.finditer(markdown):
        raw = np.frombuffer(base64.b64decode(m["data"]), dtype=np.uint8)
        out.append((m["title"], m["mime"], cv2.imdecode(raw, cv2.IMREAD_COLOR)))
    return out


def test_within_a_generous_budget_every_picture_is_there_at_full_size():
    pictures = [Picture(f"frame {i}", frame=_noisy(i)) for i in range(3)]
    result = embed(pictures, budget=2_000_000)
    decoded = _decoded(result.markdown)
    assert [t for t, _, _ in decoded] == ["frame 0", "frame 1", "frame 2"]
    assert all(mime == "image/jpeg" and img.shape == (240, 320, 3) for _, mime, img in decoded)
    assert result.bytes == len(result.markdown.encode()) and not result.left_out


def test_a_tight_budget_makes_frames_smaller_before_it_leaves_any_out():
    pictures = [Picture(f"frame {i}", frame=_noisy(i)) for i in range(3)]
    full = embed(pictures, budget=2_000_000).bytes
    result = embed(pictures, budget=full // 2)
    assert result.bytes <= full // 2 and not result.left_out
    assert all(img.shape[1] < 320 for _, _, img in _decoded(result.markdown))


def test_what_cannot_fit_is_left_out_from_the_last_and_named():
    chart = png(np.full((50, 80, 3), 200, dtype=np.uint8))
    pictures = [
        Picture("curves", png=chart),
        *(Picture(f"f{i}", frame=_noisy(i)) for i in range(4)),
    ]
    alone = embed(pictures[:1], budget=10**7).bytes
    result = embed(pictures, budget=alone + 10)  # room for the chart, not for a frame
    assert result.left_out == ["f0", "f1", "f2", "f3"]
    ((title, mime, _),) = _decoded(result.markdown)
    assert (title, mime) == ("curves", "image/png")
    match = _URI.search(result.markdown)
    assert match and base64.b64decode(match["data"]) == chart  # a chart as it is
    smallest = max(len(_encoded(p, 40).encode()) for p in pictures[1:])
    some = embed(pictures, budget=alone + int(2.5 * smallest))  # two frames at their smallest
    count = len(some.left_out)
    assert count == 2 and some.left_out == [f"f{i}" for i in range(4 - count, 4)]  # the last
    assert embed(pictures, budget=10).left_out == ["curves", "f0", "f1", "f2", "f3"]


def test_a_picture_needs_something_to_show():
    with pytest.raises(ValueError, match="a frame or a PNG"):
        embed([Picture("empty")], budget=1000)
