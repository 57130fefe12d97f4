"""The one preprocessing of the shipped detector: read, letterbox, normalise, and map boxes back.

Parity, the champion gate, ``azaion-assets predict`` and the model card all use this module, so
the figures we measure are the figures an edge device gets. It reproduces Ultralytics'
predictor exactly (``LetterBox(imgsz, auto=False)``: OpenCV decoding, ``INTER_LINEAR`` resize,
centred padding of 114 with its ``round(d - 0.1)`` split, BGR to RGB, 0..1 floats; and
``ops.scale_boxes`` on the way back), so ``YOLO(azaion.pt).predict(imgsz=<export>,
rect=False)`` and the ONNX file see the same pixels. A PIL letterbox, used here before, moved
the top box of the same ONNX to IoU 0.34 at worst. ``test_preprocess`` pins the equivalence.

Only numpy and OpenCV: an edge team can port it line by line from the model card.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAD_VALUE = 114
INTERPOLATION = "bilinear (OpenCV INTER_LINEAR)"


@dataclass(frozen=True)
class Letterbox:
    """Where an original image sits inside the square model input."""

    size: int  # the model input is size x size
    orig_h: int
    orig_w: int
    new_h: int  # the resized image inside the square
    new_w: int
    top: int
    left: int

    @classmethod
    def fit(cls, orig_h: int, orig_w: int, size: int) -> Letterbox:
        scale = min(size / orig_h, size / orig_w)
        new_w, new_h = max(round(orig_w * scale), 1), max(round(orig_h * scale), 1)
        # Ultralytics splits odd padding with round(d/2 - 0.1) on the top/left side.
        top, left = round((size - new_h) / 2 - 0.1), round((size - new_w) / 2 - 0.1)
        return cls(size, orig_h, orig_w, new_h, new_w, top, left)

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """``x1, y1, x2, y2`` rows in input pixels -> original image pixels, clipped to it."""
        out = np.array(boxes, dtype=np.float32, copy=True).reshape(-1, 4)
        gain_x, gain_y = self.new_w / self.orig_w, self.new_h / self.orig_h
        out[:, [0, 2]] = ((out[:, [0, 2]] - self.left) / gain_x).clip(0, self.orig_w)
        out[:, [1, 3]] = ((out[:, [1, 3]] - self.top) / gain_y).clip(0, self.orig_h)
        return out


def read_bgr(path: Path) -> np.ndarray:
    """An image file as OpenCV (and so Ultralytics) decodes it: HxWx3 uint8, BGR."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ValueError(f"{path}: not an image OpenCV can decode")
    return image


def letterbox_bgr(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad to ``size`` square: HxWx3 uint8, still BGR."""
    import cv2

    box = Letterbox.fit(image.shape[0], image.shape[1], size)
    if (image.shape[1], image.shape[0]) != (box.new_w, box.new_h):
        image = cv2.resize(image, (box.new_w, box.new_h), interpolation=cv2.INTER_LINEAR)
    bottom, right = size - box.new_h - box.top, size - box.new_w - box.left
    padded = cv2.copyMakeBorder(
        image, box.top, bottom, box.left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
    )
    return padded, box


def to_input(letterboxed_bgr: np.ndarray) -> np.ndarray:
    """HxWx3 BGR uint8 -> the model input: 1x3xHxW float32 RGB in [0, 1]."""
    rgb = letterboxed_bgr[..., ::-1].transpose(2, 0, 1)[None]
    return np.ascontiguousarray(rgb, dtype=np.float32) / 255.0


def prepare(path: Path, size: int) -> tuple[np.ndarray, Letterbox]:
    """An image file -> (model input, where it sits): the whole preprocessing."""
    padded, box = letterbox_bgr(read_bgr(path), size)
    return to_input(padded), box


def onnx_input_size(session) -> int:
    """The square input size an ONNX session was exported for (read from the file itself)."""
    shape = session.get_inputs()[0].shape
    height, width = shape[2], shape[3]
    if not isinstance(height, int) or height != width:
        raise ValueError(f"expected a fixed square input, the model takes {shape}")
    return height
