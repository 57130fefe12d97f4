"""Hardlink slices of a dataset into its staging layout, here or in a light helper process.

Dataset forming (``dataset/forming.py``) links in a helper process while it validates: linking
costs what ``cp -al`` costs and validating nearly as much, so on two cores the two overlap.
Small datasets are linked inline (``InProcess``): there a helper costs more than it saves.

The helper (``LinkHelper``) is this module run as a light child (``proc/child.py``) without
site-packages: it imports a few small standard modules and this package's ``proc/child.py``,
and is ready in about 30 ms. Its requests are slices (lists of links), its answers the names of
each slice that vanished, in order; its first error ends it.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections import deque
from pathlib import Path

from azaion_assets.lib.proc import child

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


class InProcess:
    """Links each submitted slice at once, inline: for small datasets a helper costs more."""

    def __init__(self, images: Path, labels: Path, staging: Path) -> None:
        self._dirs = (images, labels, staging)
        self._done: deque[list[str]] = deque()

    def submit(self, links: list[Link]) -> None:
        self._done.append(link_slice(*self._dirs, links))

    def result(self) -> list[str]:
        """The names that vanished from the oldest slice not yet collected."""
        return self._done.popleft()

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class LinkHelper:
    """Links the submitted slices in a helper process, in order.

    A thread writes the slices to the helper, so this process never blocks on a full pipe while
    the helper is busy; that thread needs the GIL only to pickle a slice, not after every link.
    On an error the helper is killed before the caller removes the staging tree it links into.
    """

    def __init__(self, images: Path, labels: Path, staging: Path) -> None:
        import queue  # here, as threading: the helper starts faster without them
        import threading

        args = [str(images), str(labels), str(staging)]
        self._child = child.Child(__file__, args, "the link helper", site=False)
        self._outbox: queue.SimpleQueue[list[Link] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write, name="link-helper-writer", daemon=True)
        self._writer.start()

    def _write(self) -> None:
        try:
            while (links := self._outbox.get()) is not None:
                self._child.send(links)
        except OSError:
            pass  # the helper failed or was killed: result() or __exit__ deals with it
        finally:
            self._child.end_input()  # the helper exits

    def submit(self, links: list[Link]) -> None:
        self._outbox.put(links)

    def result(self) -> list[str]:
        """The names that vanished from the oldest slice not yet collected; waits for it, and
        raises the helper's own error (e.g. a full disk)."""
        return self._child.receive()

    def __enter__(self) -> LinkHelper:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self._outbox.put(None)
        if exc_type is not None:
            self._child.kill()  # unblocks the writer if the helper's stdin is full
        self._writer.join()
        self._child.close(kill=exc_type is not None)


def _serve() -> None:
    """The helper's loop: link each slice that arrives, answer in order, stop at end of input
    or at the first error."""
    answers, args = child.start()
    images, labels, staging = (Path(arg) for arg in args)
    for links in child.requests():
        try:
            vanished = link_slice(images, labels, staging, links)
        except Exception as exc:  # handed to the caller, who raises it
            child.fail(answers, exc, lambda what: RuntimeError(f"the link helper failed: {what}"))
            return
        child.answer(answers, vanished)


if __name__ == "__main__":
    _serve()
