"""The annotation stream over the RabbitMQ streams protocol (rstream), without Dagster.

Each operation is a short-lived connection:

- ``probe_tail`` / ``probe_head``: the newest / oldest offset. rstream 1.1.1 has no last-offset
  call, so it subscribes at ``LAST`` (``FIRST``); the broker then delivers that chunk, whose
  highest (lowest) offset is the answer. A synchronous callback receives the whole chunk before
  the event loop runs again, so a ``call_soon`` scheduled on the first message fires exactly
  when the chunk is done.
- ``read_range``: every message with an offset in ``[first, last]``. Offsets are not contiguous
  (tracking records take offsets too), so the range is closed by the offset itself, not a count.
- ``publish``: batched sends; ``send_batch`` with about ten messages a call is what keeps the
  producer fast and its memory flat (plain ``send`` waits on a flush timer).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from azaion_assets.core.settings import Settings

OnMessage = Callable[[int, bytes, Mapping[Any, Any]], None]


class StreamError(RuntimeError):
    """The broker could not be reached or the read did not complete; names host and stream."""


@dataclass(frozen=True)
class StreamTarget:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    stream: str

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamTarget:
        return cls(
            host=settings.rabbitmq_host,
            port=settings.rabbitmq_port,
            user=settings.rabbitmq_user,
            password=settings.require("RABBITMQ_PASSWORD"),
            stream=settings.rabbitmq_queue_name,
        )

    def where(self) -> str:
        return f"{self.stream} on {self.host}:{self.port}"

    def _client_kwargs(self) -> dict[str, Any]:
        return {"port": self.port, "username": self.user, "password": self.password}


def _transient() -> tuple[type[BaseException], ...]:
    """What the broker or the network can throw at a client: all of it means "try again"."""
    from rstream.connection import ConnectionClosed
    from rstream.exceptions import ClientError, ServerError

    return (OSError, ConnectionError, EOFError, ConnectionClosed, ServerError, ClientError)


@asynccontextmanager
async def _as_stream_errors(target: StreamTarget, doing: str) -> AsyncIterator[None]:
    """Re-raise broker and network failures as ``StreamError`` naming what and where (never
    the password: client exceptions don't carry it)."""
    try:
        yield
    except StreamError:
        raise
    except _transient() as exc:
        detail = f": {exc}" if str(exc) else ""
        raise StreamError(
            f"{doing} {target.where()} failed: {type(exc).__name__}{detail}"
        ) from None


async def _close_quietly(consumer: Any) -> None:
    """Closing a consumer whose broker went away must not mask the result or the real error."""
    try:
        await consumer.close()
    except _transient():
        pass


def _body(message: Any) -> bytes:
    body = message.body
    if isinstance(body, (list, tuple)):  # several AMQP data sections
        return b"".join(bytes(part) for part in body)
    return bytes(body) if body is not None else b""


async def _consumer(target: StreamTarget):
    from rstream import Consumer

    consumer = Consumer(target.host, **target._client_kwargs())
    try:
        await consumer.start()
    except Exception as exc:
        raise StreamError(f"cannot reach {target.where()}: {type(exc).__name__}") from None
    return consumer


async def probe_tail(target: StreamTarget, timeout: float = 2.0) -> int | None:
    """The highest offset in the stream, or None if it holds no messages."""
    return await _probe(target, first=False, timeout=timeout)


async def probe_head(target: StreamTarget, timeout: float = 2.0) -> int | None:
    """The lowest offset still in the stream (retention may have removed older ones).

    None if the stream is empty; ``StreamError`` if it does not exist, since then a misnamed
    stream would look like one whose every message was removed.
    """
    return await _probe(target, first=True, timeout=timeout, must_exist=True)


async def _probe(
    target: StreamTarget, first: bool, timeout: float, must_exist: bool = False
) -> int | None:
    """Subscribe at FIRST or LAST: the broker delivers that whole chunk, and we read its ends."""
    async with _as_stream_errors(target, "probing"):
        return await _probe_once(target, first, timeout, must_exist)


async def _probe_once(target: StreamTarget, first: bool, timeout: float, must_exist: bool):
    from rstream import ConsumerOffsetSpecification, OffsetType, amqp_decoder

    consumer = await _consumer(target)
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
            decoder=amqp_decoder,
            offset_specification=ConsumerOffsetSpecification(where),
        )
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            return None  # nothing delivered: the stream is empty
        return min(offsets) if first else max(offsets)
    finally:
        await _close_quietly(consumer)


async def read_range(
    target: StreamTarget,
    first: int,
    last: int,
    on_message: OnMessage,
    idle_timeout: float = 10.0,
) -> int:
    """Call ``on_message(offset, body, properties)`` for each message in ``[first, last]``.

    Returns the number of messages. Raises ``StreamError`` if the connection fails or the
    stream stops delivering before ``last`` for ``idle_timeout`` seconds.
    """
    async with _as_stream_errors(target, "reading"):
        return await _read_range_once(target, first, last, on_message, idle_timeout)


async def _read_range_once(
    target: StreamTarget, first: int, last: int, on_message: OnMessage, idle_timeout: float
) -> int:
    from rstream import ConsumerOffsetSpecification, OffsetType, amqp_decoder

    consumer = await _consumer(target)
    try:
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
            on_message(offset, _body(message), message.application_properties or {})
            seen[0] += 1
            seen[1] = offset
            progress.set()
            if offset >= last:
                loop.call_soon(done.set)

        await consumer.subscribe(
            target.stream,
            deliver,
            decoder=amqp_decoder,
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
        await _close_quietly(consumer)


async def publish(
    target: StreamTarget,
    messages: Iterable[tuple[bytes, Mapping[str, Any]]],
    batch_size: int = 10,
) -> int:
    """Send ``(body, application_properties)`` pairs in batches; create the stream if needed."""
    from rstream import AMQPMessage, Producer

    sent = 0
    async with (
        _as_stream_errors(target, "publishing to"),
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
                await producer.send_batch(target.stream, batch)  # type: ignore[arg-type]
                sent += len(batch)
                batch = []
        if batch:
            await producer.send_batch(target.stream, batch)  # type: ignore[arg-type]
            sent += len(batch)
    return sent
