"""Read a partition's offset range in a child process, and hand it to the caller in batches.

Why a process: the stream client is CPU work in Python (rstream's frame decoding, a CRC and
copies of every byte: about 2.5 s of CPU per 10,000 messages of 100 KB). In the ingest's own
process it shares one GIL with decoding and planning, so two cores are never both busy. Here it
runs on its own interpreter; the ingest only receives batches, a few system calls each.

The child is a bare ``python -m azaion_assets.lib.stream.range_reader`` that imports the standard
library, ``stream`` and rstream, nothing else (about 0.2 s, while the caller opens its state). A
``multiprocessing`` spawn child would re-import the caller's ``__main__`` (Dagster, the
benchmark) and this package's dependencies; ``fork`` is unsafe in a multi-threaded caller.

The protocol, all pickles:

- caller to child, on the child's stdin: one ``_Request`` (it holds the broker password, so it
  is not on the command line). stdin then stays open and silent: its end means the caller is
  gone, and the child exits at once.
- child to caller, on a Unix socket of its own (stdout stays free for stray prints): frames of
  an 8-byte length and a pickle, in this order: ``("gap", OffsetRange | None)``, then
  ``("batch", [(offset, body, properties), ...])`` any number of times, then ``("end", count)``;
  or ``("error", exception)`` at any point, after which nothing follows.

The child never outlives its caller: ``PR_SET_PDEATHSIG`` kills it when the thread that started
it ends (the caller waits in that thread, so this is when the caller dies), end of stdin ends
it, a write to a socket nobody reads fails, and the caller kills and reaps it in every other case.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azaion_assets.lib.stream.client import StreamError, StreamTarget, probe_head, read_range
from azaion_assets.lib.stream.offsets import OffsetRange

Item = tuple[int, bytes, Mapping[Any, Any]]  # offset, body, application properties

_HEADER = struct.Struct("<Q")  # the length of the pickle that follows
_SOCKET_BYTES = 1 << 20  # the child's send buffer (the kernel's default is about 200 KB)
_PR_SET_PDEATHSIG = 1  # Linux prctl
_CLOSE_GRACE = 5.0  # seconds the child gets to exit once its stdin is closed


@dataclass(frozen=True)
class _Request:
    target: StreamTarget
    wanted: OffsetRange
    idle_timeout: float
    batch: int  # messages per frame


# -- the caller's side ------------------------------------------------------------------------


class StreamReader:
    """Reads ``wanted`` in a child process; iterate ``batches()`` once, in a ``with`` block.

    ``gap`` is set once the child has found the stream's head (before the first batch): the
    part of ``wanted`` that retention removed before it was read, or None.
    """

    def __init__(
        self,
        target: StreamTarget,
        wanted: OffsetRange,
        idle_timeout: float,
        batch: int,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.gap: OffsetRange | None = None
        self._log = log
        self._ended = False
        self._frames, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BYTES)
            self._proc = subprocess.Popen(
                [sys.executable, "-P", "-m", __name__, str(os.getpid()), str(theirs.fileno())],
                stdin=subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                env=_same_package_env(),
            )
        except BaseException:
            self._frames.close()
            raise
        finally:
            theirs.close()  # the child's now: its exit is our end of file
        assert self._proc.stdin is not None
        with suppress(OSError):  # the child died already: ``batches`` reports how
            pickle.dump(_Request(target, wanted, idle_timeout, batch), self._proc.stdin)
            self._proc.stdin.flush()

    def batches(self) -> Iterator[list[Item]]:
        """Every message of the range, in stream order, a batch at a time; raises what the child
        raised (``StreamError`` for broker trouble), or ``StreamError`` if the child died."""
        while (frame := _read_frame(self._frames)) is not None:
            kind, value = frame
            if kind == "batch":
                yield value
            elif kind == "gap":
                self.gap = value
                if value is not None:
                    self._log(
                        f"offsets {value.first}..{value.last} were removed by retention "
                        "before being read"
                    )
            elif kind == "end":
                self._ended = True
                return
            else:  # "error"
                raise value
        code = self._proc.wait()
        raise StreamError(f"the stream reader process ended early (exit code {code})")

    def close(self) -> None:
        """End the child (a child that sent "end" has closed its read connection already, and
        exits at the end of its stdin; any other is killed) and reap it: no zombie is left."""
        assert self._proc.stdin is not None
        with suppress(OSError):
            self._proc.stdin.close()  # end of input: the child's cue that we are done
        if not self._ended:
            self._proc.kill()
        try:
            self._proc.wait(_CLOSE_GRACE)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._frames.close()

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _same_package_env() -> dict[str, str]:
    """The environment, with this package's root first on the child's path: the child must run
    this very code (``-P`` keeps the working directory off its path, where another checkout of
    the package may be)."""
    root = str(Path(__file__).resolve().parents[3])
    rest = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, rest] if rest else [root])}


def _receive_exactly(frames: socket.socket, size: int) -> bytearray | None:
    """``size`` bytes into one buffer; None at end of file before the first byte.

    One ``MSG_WAITALL`` receive waits for the whole frame in the kernel: this thread then needs
    the GIL once a frame, not once per piece the child has written so far, and each time it may
    wait up to the switch interval (5 ms) for the applier's thread to let go of it.
    """
    buffer = bytearray(size)
    view = memoryview(buffer)
    done = 0
    while done < size:  # short only at end of file or on a signal
        got = frames.recv_into(view[done:], size - done, socket.MSG_WAITALL)
        if got == 0:
            if done == 0:
                return None
            raise StreamError(f"the stream reader process sent {done} of {size} bytes")
        done += got
    return buffer


def _read_frame(frames: socket.socket) -> tuple[str, Any] | None:
    header = _receive_exactly(frames, _HEADER.size)
    if header is None:
        return None
    body = _receive_exactly(frames, _HEADER.unpack(header)[0])
    if body is None:
        raise StreamError("the stream reader process sent a header without its frame")
    return pickle.loads(body)


# -- the child's side -------------------------------------------------------------------------


def _write_frame(out: socket.socket, frame: tuple[str, Any]) -> None:
    """Blocks while the caller's queue is full: that is the backpressure that keeps memory flat."""
    data = pickle.dumps(frame, pickle.HIGHEST_PROTOCOL)
    try:
        out.sendall(_HEADER.pack(len(data)))
        out.sendall(data)
    except (BrokenPipeError, ConnectionResetError):  # nobody reads: the caller is gone or
        os._exit(1)  # failed (rstream would only log an error raised in its callback, read on)


def gap_and_start(wanted: OffsetRange, head: int | None) -> tuple[OffsetRange | None, int | None]:
    """The part of ``wanted`` lost to retention, and where reading starts (None: nothing left)."""
    if head is None:  # the stream is empty: everything it held was removed
        return wanted, None
    if head <= wanted.first:
        return None, wanted.first
    if head > wanted.last:
        return wanted, None
    return OffsetRange(wanted.first, head - 1), head


async def _read(request: _Request, out: socket.socket) -> None:
    """Probe the head, report the gap, read the rest of the range in frames of batches."""
    closing: set[asyncio.Task[None]] = set()
    try:
        head = await probe_head(request.target, closing=closing)
        gap, start = gap_and_start(request.wanted, head)
        _write_frame(out, ("gap", gap))
        count = 0
        if start is not None:
            batch: list[Item] = []

            def deliver(offset: int, body: bytes, properties: Mapping[Any, Any]) -> None:
                batch.append((offset, body, properties))
                if len(batch) >= request.batch:
                    _write_frame(out, ("batch", batch))
                    batch.clear()

            count = await read_range(
                request.target,
                start,
                request.wanted.last,
                deliver,
                request.idle_timeout,
                closing=closing,  # the end goes out before rstream's slow close
            )
            if batch:
                _write_frame(out, ("batch", batch))
        _write_frame(out, ("end", count))
    finally:
        await asyncio.gather(*closing, return_exceptions=True)  # the probe's connection


def _die_with_parent(parent: int) -> None:
    """Be killed when the caller dies, and exit now if it died before this was set."""
    import ctypes

    with suppress(OSError, AttributeError):  # not Linux: the end of stdin still ends the child
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _exit_at_end_of_input() -> None:
    """stdin is silent after the request; once it is readable, the caller has closed it or
    died, and nobody wants what is still being read."""
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), os._exit, 0)


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return StreamError(f"the stream reader failed: {type(exc).__name__}: {exc}")


def _main(parent: int, fd: int) -> None:
    _die_with_parent(parent)
    out = socket.socket(fileno=fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller decides; Ctrl-C reaches it too
    request: _Request = pickle.load(sys.stdin.buffer)

    async def run() -> None:
        _exit_at_end_of_input()
        await _read(request, out)

    try:
        asyncio.run(run())
    except BaseException as exc:
        if not isinstance(exc, StreamError):
            traceback.print_exc()  # to the caller's stderr: a bug, not broker trouble
        _write_frame(out, ("error", _picklable(exc)))


if __name__ == "__main__":
    _main(int(sys.argv[1]), int(sys.argv[2]))
