"""Reaching the annotation stream: where it is, a consumer opened and closed, and the error.

Shared by the reads, the probes and the publisher of ``client``, which the range reader's child
process imports, so this imports the standard library only (rstream lazily). Every broker or
network failure becomes one ``StreamError`` that names the stream and its host, never the
password.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azaion_assets.lib.stream.rstream_fixes import install as install_rstream_fixes

if TYPE_CHECKING:
    from azaion_assets.lib.config.settings import Settings


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

    def as_env(self) -> dict[str, str]:
        """The RABBITMQ_* variables that make ``from_settings`` give this target back (for the
        runs a demo or a test starts)."""
        return {
            "RABBITMQ_HOST": self.host,
            "RABBITMQ_PORT": str(self.port),
            "RABBITMQ_USER": self.user,
            "RABBITMQ_PASSWORD": self.password,
            "RABBITMQ_QUEUE_NAME": self.stream,
        }

    def _client_kwargs(self) -> dict[str, Any]:
        return {"port": self.port, "username": self.user, "password": self.password}


def transient_errors() -> tuple[type[BaseException], ...]:
    """What the broker or the network can throw at a client: all of it means "try again"."""
    from rstream.connection import ConnectionClosed
    from rstream.exceptions import ClientError, ServerError

    return (OSError, ConnectionError, EOFError, ConnectionClosed, ServerError, ClientError)


@asynccontextmanager
async def as_stream_errors(target: StreamTarget, doing: str) -> AsyncIterator[None]:
    """Re-raise broker and network failures as ``StreamError`` naming what and where (never
    the password: client exceptions don't carry it)."""
    try:
        yield
    except StreamError:
        raise
    except transient_errors() as exc:
        detail = f": {exc}" if str(exc) else ""
        raise StreamError(
            f"{doing} {target.where()} failed: {type(exc).__name__}{detail}"
        ) from None


async def close_quietly(consumer: Any) -> None:
    """Closing a consumer whose broker went away must not mask the result or the real error."""
    try:
        await consumer.close()
    except transient_errors():
        pass


async def open_consumer(target: StreamTarget):
    from rstream import Consumer

    install_rstream_fixes()
    consumer = Consumer(target.host, **target._client_kwargs())
    try:
        await consumer.start()
    except Exception as exc:
        raise StreamError(f"cannot reach {target.where()}: {type(exc).__name__}") from None
    return consumer


async def close_consumer(consumer: Any, closing: set[asyncio.Task[None]] | None) -> None:
    """Close ``consumer`` now, or in a task added to ``closing`` (the caller awaits those)."""
    if closing is None:
        await close_quietly(consumer)
    else:
        closing.add(asyncio.ensure_future(close_quietly(consumer)))
