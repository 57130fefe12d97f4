"""How each message comes off the wire in a range read.

rstream's stock connection reads a frame 256 bytes per await, and its decoder drops the rest of
a chunk when one frame fails to decode. Here a frame is read whole, and a bad frame is kept with
its bytes for the quarantine. Standard library only (rstream lazily): the range reader's child
process imports this.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any


def undecoded(data: bytes) -> bytes:
    return data


@dataclass(frozen=True)
class Undecodable:
    raw: bytes
    reason: str


def decode_or_keep(data: bytes) -> Any:
    """AMQP 1.0 decoding that never raises. rstream runs the decoder for a whole chunk and, if
    it raises, logs and drops the rest of that chunk; a bad frame must instead reach the
    quarantine with its bytes, and the messages after it must still be delivered."""
    from rstream import amqp_decoder

    try:
        return amqp_decoder(data)
    except Exception as exc:  # whatever the frame does to the decoder
        return Undecodable(bytes(data), f"{type(exc).__name__}: {str(exc)[:200]}")


def message_body(message: Any) -> bytes:
    body = message.body
    if isinstance(body, (list, tuple)):  # several AMQP data sections
        return b"".join(bytes(part) for part in body)
    return bytes(body) if body is not None else b""


def read_whole_frames(conn: Any) -> None:
    """Make one rstream connection read each frame with two ``readexactly`` calls.

    rstream 1.1.1's ``Connection._read`` grows a buffer 256 bytes per await (``CHUNK_SIZE``),
    so a 100 KB message costs some 400 event-loop steps and consuming is CPU-bound. This
    replaces ``_read`` on one connection object only (ours, made for one ``read_range``): other
    rstream users, and the benchmark's stock baseline, are untouched. Bytes that the stock
    ``_read`` already buffered are consumed first, so the switch is safe mid-stream. Tied to
    rstream 1.1.1 internals (pinned); ``test_stream`` checks the output matches stock reads.
    """
    from rstream.connection import ConnectionClosed

    reader: asyncio.StreamReader = conn._reader
    leftover: bytearray = conn._buffer

    async def read(n: int) -> bytes | bytearray:
        try:
            if not leftover:
                return await reader.readexactly(n)
            if len(leftover) >= n:
                data = leftover[:n]
                del leftover[:n]
                return data
            rest = await reader.readexactly(n - len(leftover))
            data = leftover + rest
            leftover.clear()
            return data
        except asyncio.IncompleteReadError:
            raise ConnectionClosed from None

    conn._read = read
