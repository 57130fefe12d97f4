"""Read a partition's offset range in a child process, and hand it to the caller in batches.

Why a process: the stream client is CPU work in Python (rstream's frame decoding, a CRC and
copies of every byte: about 2.5 s of CPU per 10,000 messages of 100 KB). In the ingest's own
process it shares one GIL with decoding and planning, so two cores are never both busy. Here it
runs on its own interpreter; the ingest only receives batches, a few system calls each.

The child (``proc/child.py``: how it starts, frames its answers, fails and ends) is a bare
``python -P range_reader.py`` that imports the standard library, ``stream`` and rstream,
nothing else (about 0.2 s, while the caller opens its state).

The protocol: one request, a ``_Request`` (it holds the broker password, so it is not on the
command line); stdin then stays open and silent, and its end means the caller is gone: the
child exits at once. The answers, in this order: ``("gap", OffsetRange | None)``, then
``("batch", [(offset, body, properties), ...])`` any number of times, then ``("end", count)``;
or the child's error at any point, after which nothing follows.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from azaion_assets.lib.proc import child
from azaion_assets.lib.stream.client import StreamError, StreamTarget, probe_head, read_range
from azaion_assets.lib.stream.offsets import OffsetRange

Item = tuple[int, bytes, Mapping[Any, Any]]  # offset, body, application properties


@dataclass(frozen=True)
class _Request:
    target: StreamTarget
    wanted: OffsetRange
    idle_timeout: float
    batch: int  # messages per frame
    batch_bytes: int = 4 << 20  # bytes per frame: a frame closes at either, after one message


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
        batch_bytes: int = 4 << 20,
    ) -> None:
        self.gap: OffsetRange | None = None
        self._log = log
        self._ended = False
        self._child = child.Child(__file__, [], "the stream reader process", StreamError)
        with suppress(OSError):  # the child died already: ``batches`` reports how
            self._child.send(_Request(target, wanted, idle_timeout, batch, batch_bytes))

    def batches(self) -> Iterator[list[Item]]:
        """Every message of the range, in stream order, a batch at a time; raises what the child
        raised (``StreamError`` for broker trouble), or ``StreamError`` if the child died."""
        while True:
            kind, value = self._child.receive()
            if kind == "batch":
                yield value
            elif kind == "gap":
                self.gap = value
                if value is not None:
                    self._log(
                        f"offsets {value.first}..{value.last} were removed by retention "
                        "before being read"
                    )
            else:  # "end"
                self._ended = True
                return

    def close(self) -> None:
        """End the child (a child that sent "end" has closed its read connection already, and
        exits at the end of its stdin; any other is killed) and reap it: no zombie is left."""
        self._child.close(kill=not self._ended)

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the child's side -------------------------------------------------------------------------


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
        child.answer(out, ("gap", gap))
        count = 0
        if start is not None:
            batch: list[Item] = []
            size = 0

            def deliver(offset: int, body: bytes, properties: Mapping[Any, Any]) -> None:
                nonlocal size
                batch.append((offset, body, properties))
                size += len(body)
                if len(batch) >= request.batch or size >= request.batch_bytes:
                    child.answer(out, ("batch", batch))
                    batch.clear()
                    size = 0

            count = await read_range(
                request.target,
                start,
                request.wanted.last,
                deliver,
                request.idle_timeout,
                closing=closing,  # the end goes out before rstream's slow close
            )
            if batch:
                child.answer(out, ("batch", batch))
        child.answer(out, ("end", count))
    finally:
        await asyncio.gather(*closing, return_exceptions=True)  # the probe's connection


def _exit_at_end_of_input() -> None:
    """stdin is silent after the request; once it is readable, the caller has closed it or
    died, and nobody wants what is still being read."""
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), os._exit, 0)


def _main() -> None:
    out, _ = child.start()
    request: _Request = child.request()

    async def run() -> None:
        _exit_at_end_of_input()
        await _read(request, out)

    try:
        asyncio.run(run())
    except BaseException as exc:
        if not isinstance(exc, StreamError):
            traceback.print_exc()  # to the caller's stderr: a bug, not broker trouble
        child.fail(out, exc, lambda what: StreamError(f"the stream reader failed: {what}"))


if __name__ == "__main__":
    _main()
