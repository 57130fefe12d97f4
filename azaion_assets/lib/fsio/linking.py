"""Hardlink slices of a dataset into its staging layout, here or in a light helper process.

Dataset forming (``forming.py``) links in a helper process while it validates: linking costs
what ``cp -al`` costs and validating nearly as much, so on two cores the two overlap.
The helper runs this file as a script in an isolated interpreter without site-packages
(``python -I -S linking.py``), so it must import the standard library only. That is the point:
it is ready in about 30 ms, where a ``multiprocessing`` spawn child re-imports the caller's
``__main__`` (the benchmark, or Dagster itself) and this package's dependencies (0.2 s in the
benchmark, longer than scanning 100,000 files).

The protocol is pickles over the helper's stdin and stdout: one list of links in, one
``(True, vanished names)`` or ``(False, exception)`` out, in order; end of input ends the helper.
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import sys
from pathlib import Path

Link = tuple[str, str, str, str]  # name, image file, label file, split
KINDS = ("images", "labels")


def _copy_durably(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())


class _Linker:
    """Hardlink by directory fd; fall back to durable copies once the filesystem refuses links."""

    def __init__(self, src: Path, src_fd: int) -> None:
        self.src, self.src_fd = src, src_fd
        self.copying = False

    def __call__(self, name: str, dst: Path, dst_fd: int) -> None:
        if not self.copying:
            try:
                os.link(name, name, src_dir_fd=self.src_fd, dst_dir_fd=dst_fd)
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                self.copying = True  # e.g. data/ and datasets/ on different filesystems
        _copy_durably(self.src / name, dst / name)


def link_slice(images: Path, labels: Path, staging: Path, links: list[Link]) -> list[str]:
    """Link one slice into ``staging/<split>/<kind>/``; return the names that vanished."""
    opened: list[int] = []
    vanished: list[str] = []

    def open_dir(path: Path) -> int:
        opened.append(os.open(path, os.O_RDONLY | os.O_DIRECTORY))
        return opened[-1]

    try:
        image_link = _Linker(images, open_dir(images))
        label_link = _Linker(labels, open_dir(labels))
        dst: dict[str, tuple[tuple[Path, int], tuple[Path, int]]] = {}
        for name, image, label, split in links:
            if split not in dst:
                img_dir, lbl_dir = (staging / split / kind for kind in KINDS)
                dst[split] = (img_dir, open_dir(img_dir)), (lbl_dir, open_dir(lbl_dir))
            (img_dir, img_fd), (lbl_dir, lbl_fd) = dst[split]
            try:
                label_link(label, lbl_dir, lbl_fd)
                image_link(image, img_dir, img_fd)
            except FileNotFoundError:  # moved or deleted by a writer since the scan
                for leftover in (lbl_dir / label, img_dir / image):
                    leftover.unlink(missing_ok=True)
                vanished.append(name)
    finally:
        for fd in opened:
            os.close(fd)
    return vanished


def _serve(images: Path, labels: Path, staging: Path) -> None:
    """The helper's loop: link each slice that arrives, answer in order, stop at end of input."""
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            links = pickle.load(requests)
        except EOFError:
            return
        try:
            reply = (True, link_slice(images, labels, staging, links))
        except Exception as exc:  # handed to the caller, who raises it
            reply = (False, exc)
        pickle.dump(reply, replies)
        replies.flush()
        if not reply[0]:
            return


if __name__ == "__main__":
    _serve(*(Path(arg) for arg in sys.argv[1:4]))
