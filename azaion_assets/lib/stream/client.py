"""The annotation stream over the RabbitMQ streams protocol (rstream), without Dagster.

Each operation is a short-lived connection:

- ``probe_tail`` / ``probe_head``: the newest / oldest offset. rstream 1.1.1 has no last-offset
  call, so it subscribes at ``LAST`` (``FIRST``); the broker then delivers that chunk, whose
  highest (lowest) offset is the answer. A synchronous callback receives the whole chunk before
  the event loop runs again, so a ``call_soon`` scheduled on the first message fires exactly
  when the chunk is done.
- ``read_range``: every message with an offset in ``[first, last]``. Offsets are not contiguous
  (tracking records take offsets too), so the range is closed by the offset itself, not a count.
  It reads whole frames (``frames.read_whole_frames``) instead of rstream's 256-byte steps.
- ``publish``: batched sends; ``send_batch`` with about ten messages a call is what keeps the
  producer fast and its memory flat (plain ``send`` waits on a flush timer). A window of
  unconfirmed messages keeps the broker's chunks small, and it returns only once all are stored.

Reaching the broker (the target, a consumer opened and closed, the one error every failure
becomes) is ``stream_connection``; how a message comes off the wire is ``frames``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from azaion_assets.lib.stream.frames import (
    Undecodable,
    decode_or_keep,
    message_body,
    read_whole_frames,
    undecoded,
)
from azaion_assets.lib.stream.rstream_fixes import install as install_rstream_fixes
from azaion_assets.lib.stream.stream_connection import (
    StreamError,
    StreamTarget,
    as_stream_errors,
    close_consumer,
    open_consumer,
)
from azaion_assets.lib.text import plural

# Set by the stream reader on a message whose AMQP 1.0 frame itself could not be decoded. Here,
# not in ``contract``, so that this module imports no more than the standard library (the
# range reader's child process imports it and rstream only: ``range_reader``).
AMQP_ERROR_PROPERTY = "x-azaion-amqp-error"

OnMessage = Callable[[int, bytes, Mapping[Any, Any]], None]


async def probe_tail(target: StreamTarget, timeout: float = 2.0) -> int | None:
    """The highest offset in the stream, or None if it holds no messages."""
    return await _probe(target, first=False, timeout=timeout)


async def probe_head(
    target: StreamTarget, timeout: float = 2.0, closing: set[asyncio.Task[None]] | None = None
) -> int | None:
    """The lowest offset still in the stream (retention may have removed older ones).

    None if the stream is empty; ``StreamError`` if it does not exist, since then a misnamed
    stream would look like one whose every message was removed.

    rstream takes about 0.6 s to close a consumer (it sleeps 0.2 s per connection). With
    ``closing``, the close runs in a task added to that set instead, so the caller can go on
    (e.g. read the range) and must await the tasks before its event loop ends.
    """
    return await _probe(target, first=True, timeout=timeout, must_exist=True, closing=closing)


async def _probe(
    target: StreamTarget,
    first: bool,
    timeout: float,
    must_exist: bool = False,
    closing: set[asyncio.Task[None]] | None = None,
) -> int | None:
    """Subscribe at FIRST or LAST: the broker delivers that whole chunk, and we read its ends."""
    async with as_stream_errors(target, "probing"):
        return await _probe_once(target, first, timeout, must_exist, closing)


async def _probe_once(
    target: StreamTarget,
    first: bool,
    timeout: float,
    must_exist: bool,
    closing: set[asyncio.Task[None]] | None,
):
    from rstream import ConsumerOffsetSpecification, OffsetType

    consumer = await open_consumer(target)
    try:
        if not await consumer.stream_exists(target.stream):
            if must_exist:
                raise StreamError(f"stream {target.where()} does not exist")
            return None
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        offsets: list[int] = []

        def on_message(_message: Any, ctx: Any) -> None:
            if not offsets:
                loop.call_soon(done.set)  # runs once the rest of this chunk is delivered
            offsets.append(ctx.offset)

        where = OffsetType.FIRST if first else OffsetType.LAST
        await consumer.subscribe(
            target.stream,
            on_message,
            decoder=undecoded,  # offsets only: no payload is decoded
            offset_specification=ConsumerOffsetSpecification(where),
        )
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            if must_exist:
                # The head decides what counts as lost to retention: never guess it.
                raise StreamError(
                    f"{target.where()}: no chunk at the head within {timeout:.0f}s "
                    "(empty, or slow to deliver)"
                ) from None
            return None  # nothing delivered: the stream is empty
        return min(offsets) if first else max(offsets)
    finally:
        await close_consumer(consumer, closing)


async def read_range(
    target: StreamTarget,
    first: int,
    last: int,
    on_message: OnMessage,
    idle_timeout: float = 10.0,
    fast_reader: bool = True,
    closing: set[asyncio.Task[None]] | None = None,
) -> int:
    """Call ``on_message(offset, body, properties)`` for each message in ``[first, last]``.

    Returns the number of messages. Raises ``StreamError`` if the connection fails or the
    stream stops delivering before ``last`` for ``idle_timeout`` seconds.
    ``fast_reader=False`` reads with stock rstream (the benchmark's baseline). ``closing``: as
    for ``probe_head``, the consumer is closed in a task added to it, so the caller can report
    the end 0.6 s sooner.
    """
    async with as_stream_errors(target, "reading"):
        return await _read_range_once(
            target, first, last, on_message, idle_timeout, fast_reader, closing
        )


async def _read_range_once(
    target: StreamTarget,
    first: int,
    last: int,
    on_message: OnMessage,
    idle_timeout: float,
    fast_reader: bool,
    closing: set[asyncio.Task[None]] | None,
) -> int:
    from rstream import ConsumerOffsetSpecification, OffsetType

    consumer = await open_consumer(target)
    try:
        if fast_reader:  # the connection subscribe will use, made before any delivery
            read_whole_frames((await consumer._get_or_create_client(target.stream))._conn)
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        seen = [0, first - 1]  # count, highest offset
        progress = asyncio.Event()

        def deliver(message: Any, ctx: Any) -> None:
            offset = ctx.offset
            if offset < first or offset > last or done.is_set():
                if offset > last and not done.is_set():
                    loop.call_soon(done.set)
                return
            if isinstance(message, Undecodable):  # quarantined downstream, never dropped
                on_message(offset, message.raw, {AMQP_ERROR_PROPERTY: message.reason})
            else:
                on_message(offset, message_body(message), message.application_properties or {})
            seen[0] += 1
            seen[1] = offset
            progress.set()
            if offset >= last:
                loop.call_soon(done.set)

        await consumer.subscribe(
            target.stream,
            deliver,
            decoder=decode_or_keep,
            offset_specification=ConsumerOffsetSpecification(OffsetType.OFFSET, first),
        )
        while not done.is_set():
            progress.clear()
            waiters = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(progress.wait())]
            finished, pending = await asyncio.wait(
                waiters, timeout=idle_timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
            if not finished:
                raise StreamError(
                    f"{target.where()}: no message for {idle_timeout:.0f}s at offset {seen[1]} "
                    f"while reading {first}..{last}"
                )
        return seen[0]
    finally:
        await close_consumer(consumer, closing)


async def publish(
    target: StreamTarget,
    messages: Iterable[tuple[bytes, Mapping[str, Any]]],
    batch_size: int = 10,
    window: int = 100,
    confirm_timeout: float = 30.0,
) -> int:
    """Send ``(body, application_properties)`` pairs in batches; create the stream if needed.

    Returns once the broker has confirmed every message. At most ``window`` messages are
    unconfirmed at a time: without a bound the broker writes whatever piled up in its inbox as
    one chunk (hundreds of MB in a fast burst), and a consumer receives a chunk whole.
    """
    from rstream import AMQPMessage, ConfirmationStatus, Producer

    sent = 0
    settled = [0]  # confirmed or refused
    refused: list[int] = []  # response codes
    progress = asyncio.Event()

    def on_confirm(status: ConfirmationStatus) -> None:
        settled[0] += 1
        if not status.is_confirmed:
            refused.append(status.response_code)
        progress.set()

    async def settle(limit: int) -> None:
        """Wait until at most ``limit`` messages are unconfirmed."""
        while sent - settled[0] > limit:
            progress.clear()
            try:
                await asyncio.wait_for(progress.wait(), confirm_timeout)
            except TimeoutError:
                raise StreamError(
                    f"{target.where()}: {plural(sent - settled[0], 'message')} unconfirmed "
                    f"after {confirm_timeout:.0f}s"
                ) from None

    install_rstream_fixes()
    async with (
        as_stream_errors(target, "publishing to"),
        Producer(target.host, **target._client_kwargs()) as producer,
    ):
        if not await producer.stream_exists(target.stream):
            # Created with the broker's defaults; a stream set up by operators (retention,
            # segment size) is used as it is.
            await producer.create_stream(target.stream, exists_ok=True)
        batch: list[AMQPMessage] = []
        for body, properties in messages:
            props: dict[str | bytes, Any] = {**properties}
            batch.append(AMQPMessage(body=body, application_properties=props))
            if len(batch) >= batch_size:
                await settle(max(0, window - len(batch)))
                await producer.send_batch(
                    target.stream,
                    batch,  # type: ignore[arg-type]
                    on_publish_confirm=on_confirm,
                )
                sent += len(batch)
                batch = []
        if batch:
            await producer.send_batch(
                target.stream,
                batch,  # type: ignore[arg-type]
                on_publish_confirm=on_confirm,
            )
            sent += len(batch)
        await settle(0)
    if refused:
        raise StreamError(
            f"{target.where()}: the broker refused {len(refused)} of {plural(sent, 'message')} "
            f"(response code {refused[0]})"
        )
    return sent
