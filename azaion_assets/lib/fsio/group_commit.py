"""Durable changes to many files at once: writes, moves and removals, made durable as a group.

Why not ``atomic.py`` per file: the ingest writes two files per message, and one fsync per file
costs about twice the kernel time of one ``syncfs`` per group (bench/README.md). The order per
group is the same as per file, so a crash never leaves a half-written file under a real name:

1. write each new file to a hidden temp file beside its target and start writing it out (on a
   few threads: these system calls wait on the kernel and the disk, not the GIL);
2. wait until every temp file of the group is durable (one ``syncfs`` per filesystem; an
   ``fsync`` per file where ``syncfs`` is missing);
3. rename temps into place, move and remove files as asked; fsync the touched directories.

Temp files of a crashed group end in the caller's suffix, for ``atomic.sweep_temps``.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from azaion_assets.lib.fsio.atomic import fsync_dir, open_temp, opened_dir

_WRITE_THREADS = 8


@dataclass
class FileChanges:
    """The file work of one group, on plain string paths (no ``Path`` objects per file)."""

    writes: list[tuple[str, bytes]] = field(default_factory=list)  # target, content
    moves: list[tuple[str, str]] = field(default_factory=list)  # gone source: moved already
    removals: list[str] = field(default_factory=list)  # removed if present, after the moves


def commit(changes: FileChanges, temp_suffix: str) -> None:
    """Make ``changes`` durable: every write whole or not at all under its target's name."""
    touched: set[str] = set()
    for folder in {os.path.dirname(target) for target, _ in changes.writes}:
        os.makedirs(folder, exist_ok=True)
    temps = _write_temps(_pool(), changes.writes, temp_suffix)
    for tmp, (target, _) in zip(temps, changes.writes, strict=True):
        os.replace(tmp, target)
        touched.add(os.path.dirname(target))
    for source, target in changes.moves:
        try:
            os.replace(source, target)
        except FileNotFoundError:
            continue  # moved by an earlier attempt
        touched |= {os.path.dirname(source), os.path.dirname(target)}
    touched |= {os.path.dirname(p) for p in _remove_present(changes.removals)}
    for folder in touched:
        fsync_dir(folder)


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """The write threads, started once per process and shared by every caller: a pool per
    group started 8 threads 80 times per 10,000 messages, and each start waits for the new
    thread to get the GIL (1.5 s of the applier's time, measured)."""
    return ThreadPoolExecutor(_WRITE_THREADS, thread_name_prefix="azaion-ingest-write")


os.register_at_fork(after_in_child=_pool.cache_clear)  # threads do not survive a fork


def _syncfs() -> Callable[[int], int] | None:
    """Linux ``syncfs(2)``: flush one filesystem's dirty data in one call, or None elsewhere."""
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _syncfs()


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux ``sync_file_range(2)``, or None elsewhere. Only ever called with
    ``SYNC_FILE_RANGE_WRITE``: it starts writing a file out and returns, which guarantees
    nothing (``syncfs`` still does); without it nothing is written until the group's
    ``syncfs``, which then waits on all of it while the writes of the next group cannot start.
    """
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return fn


_SYNC_FILE_RANGE = _sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def _sync_filesystems(folders: Iterable[str]) -> None:
    """Make every temp file written in ``folders`` durable: one ``syncfs`` per filesystem.

    Per group this replaces one fsync per file (two files per message), which costs this
    many times more kernel time; the order is unchanged: data durable first, renames after.
    Since Linux 5.8, ``syncfs`` reports writeback errors like ``fsync`` does.
    """
    assert _SYNCFS is not None
    by_device: dict[int, str] = {}
    for folder in folders:
        by_device.setdefault(os.stat(folder).st_dev, folder)
    for folder in by_device.values():
        with opened_dir(folder) as fd:
            if _SYNCFS(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs: {os.strerror(err)}", folder)


def _write_temp(target: str, data: bytes, suffix: str) -> str:
    """Write ``data`` to a hidden temp file beside ``target``; return its path. It is fsynced
    here unless ``syncfs`` will make the whole group durable at once; then its write-out is
    only started here, so that the disk works while the group is still being written."""
    fd, tmp = open_temp(target, suffix)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if _SYNCFS is None:
            os.fsync(fd)
        elif _SYNC_FILE_RANGE is not None:
            _SYNC_FILE_RANGE(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def _shares(items: list, most: int) -> list[list]:
    """``items`` dealt out round-robin to at most ``most`` shares (one task per thread)."""
    count = max(1, min(most, len(items)))
    return [items[i::count] for i in range(count)]


def _write_temps(
    pool: ThreadPoolExecutor, writes: list[tuple[str, bytes]], suffix: str
) -> list[str]:
    """``_write_temp`` for every write, in write order, on the pool's threads: creating, writing
    and fsyncing a file are system calls that wait on the kernel and the disk, not on the GIL,
    so they overlap. On any failure every temp file made is removed and the first error is
    raised."""
    if not writes:
        return []
    share = functools.partial(_write_share, suffix=suffix)
    shares = list(pool.map(share, _shares(writes, _WRITE_THREADS)))
    threads = len(shares)
    errors = [error for _, error in shares if error is not None]
    if errors:
        for temps, _ in shares:
            for tmp in temps:
                Path(tmp).unlink(missing_ok=True)
        raise errors[0]
    temps = [shares[i % threads][0][i // threads] for i in range(len(writes))]
    if _SYNCFS is not None:
        try:
            _sync_filesystems({os.path.dirname(t) for t in temps})
        except BaseException:
            for tmp in temps:
                Path(tmp).unlink(missing_ok=True)
            raise
    return temps


def _write_share(
    writes: list[tuple[str, bytes]], suffix: str
) -> tuple[list[str], BaseException | None]:
    temps: list[str] = []
    try:
        for target, data in writes:
            temps.append(_write_temp(target, data, suffix))
    except BaseException as exc:  # handed to the caller, which removes the temps and raises
        return temps, exc
    return temps, None


def _remove_present(paths: list[str]) -> list[str]:
    """Remove whichever of ``paths`` exist; return those removed.

    Nearly all are absent (16 candidates per written name), so each is looked up first: a
    lookup is lock-free and costs 1 us, where ``unlink`` takes the directory's lock even when
    nothing is there and cost 3.4 us, contending with the writes into the same directory.
    """
    removed = []
    for path in paths:
        if not os.access(path, os.F_OK, follow_symlinks=False):
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed
