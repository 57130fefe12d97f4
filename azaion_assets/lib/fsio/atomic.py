"""Crash-safe file writes: a reader sees the old file or the new one, never half of one.

Every file the pipeline publishes goes through here or through ``group_commit.py`` (many files
at once): write to a temp file in the same directory, fsync it, rename it over the target, then
fsync the directory so the rename itself survives a power cut. Temp files of both are named
here, hidden beside their target, so a crashed write leaves nothing a reader lists.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_temp_tag = ""  # unique to this process (set below, and again in a forked child)...
_temp_serial = itertools.count()  # ...and a serial unique within it (``next`` holds the GIL)


def _new_temp_tag() -> None:
    global _temp_tag
    _temp_tag = f"{os.getpid()}-{os.urandom(4).hex()}"


_new_temp_tag()
os.register_at_fork(after_in_child=_new_temp_tag)


def temp_path(target: str, suffix: str = TEMP_SUFFIX) -> str:
    """A fresh hidden temp name beside ``target``, ending in ``suffix``. ``mkstemp`` draws random
    names in Python, which cost as much as the file system calls; a name unique to this process
    needs no retries (and ``O_EXCL`` still refuses a clash)."""
    folder, name = os.path.split(target)
    return f"{folder}/.{name}.{_temp_tag}-{next(_temp_serial)}{suffix}"


def open_temp(target: str, suffix: str = TEMP_SUFFIX, mode: int = 0o644) -> tuple[int, str]:
    """Create a fresh temp file beside ``target`` with file mode ``mode`` (whatever the umask);
    return its descriptor, open for writing, and its path."""
    tmp = temp_path(target, suffix)
    fd = os.open(tmp, _TEMP_FLAGS, mode)
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, tmp


def sweep_temps(folders: Iterable[Path], suffix: str) -> int:
    """Remove the temp files ending in ``suffix`` that a crashed writer left in ``folders``
    (only while no writer of theirs runs); return how many."""
    removed = 0
    for folder in folders:
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") and entry.name.endswith(suffix):
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
    return removed


@contextmanager
def opened_dir(path: Path | str) -> Iterator[int]:
    """A read-only descriptor of the directory ``path``, closed on exit."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


def fsync_dir(path: Path | str) -> None:
    """Persist a directory entry change (create, rename) made inside ``path``."""
    with opened_dir(path) as fd:
        os.fsync(fd)


@contextmanager
def replacing(target: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a handle on a temp file beside ``target`` that replaces it on a clean exit.

    The temp file is fsynced before the rename and the directory after it; on any error the temp
    file is removed and ``target`` is left exactly as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = open_temp(str(target), mode=mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(target: Path, data: bytes | memoryview, mode: int = 0o644) -> Path:
    """Write ``data`` to ``target`` atomically with file mode ``mode``."""
    with replacing(target, mode) as handle:
        handle.write(data)
    return Path(target)


def atomic_write_text(target: Path, text: str, mode: int = 0o644) -> Path:
    """Write UTF-8 ``text`` to ``target`` atomically."""
    return atomic_write_bytes(target, text.encode("utf-8"), mode=mode)


def atomic_copy(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` so that readers of ``target`` never see a partial copy."""
    with (
        open(source, "rb") as src,
        replacing(target, stat.S_IMODE(os.fstat(src.fileno()).st_mode)) as out,
    ):
        shutil.copyfileobj(src, out, length=1 << 20)
    return Path(target)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux ``renameat2(RENAME_EXCHANGE)``; False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def replace_dir(staging: Path, target: Path) -> None:
    """Swap a fully written ``staging`` directory into place at ``target``.

    Directories cannot be renamed over non-empty ones. On Linux the swap is one atomic
    ``RENAME_EXCHANGE``, so ``target`` always names a complete directory, old or new. Elsewhere
    the old directory is renamed aside first; the window in between is two renames long.
    """
    staging, target = Path(staging), Path(target)
    if target.exists() and _exchange(staging, target):
        # ``staging`` now holds the old content: move it out of that name before deleting it,
        # so a crash during the delete never leaves old content where a retry looks for work.
        trash = target.with_name(f".{target.name}.old")
        if trash.exists():
            shutil.rmtree(trash)
        os.replace(staging, trash)
        shutil.rmtree(trash)
    else:
        old = target.with_name(f".{target.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        if old.exists():
            shutil.rmtree(old)
    fsync_dir(target.parent)
