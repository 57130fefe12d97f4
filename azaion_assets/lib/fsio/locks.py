"""Exclusive file locks (``flock``) between processes that share the data tree.

One lock file per guarded thing (a dataset partition, the ingest's tree, the published models,
a partition's training). The kernel releases a lock when its holder dies, so a crashed run never
leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block.

    ``on_wait`` is called once if another holder makes this one wait, to say so.
    """
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
