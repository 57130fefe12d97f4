"""A fix for rstream 1.1.1: a client whose broker dropped the connection never closes its socket.

When the broker closes a connection first (a failed login: the broker answers the wrong
password and hangs up; a broker restart), the client's listener marks it broken, and
``BaseClient.close`` then skips closing the transport, so the socket stays open in CLOSE_WAIT.
The stream sensor probes the broker every tick, so a wrong password would leak one socket per
tick until the code server runs out of file descriptors. ``install`` wraps ``close`` so the
transport is always closed; it is idempotent and changes nothing else.
"""

from __future__ import annotations

import contextlib
from typing import Any

_MARK = "_azaion_closes_transport"


def install() -> None:
    from rstream.client import BaseClient

    if getattr(BaseClient.close, _MARK, False):
        return
    original = BaseClient.close

    async def close(self: Any) -> None:
        try:
            await original(self)
        finally:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):  # already reset by the peer
                    await conn.close()

    setattr(close, _MARK, True)
    BaseClient.close = close  # type: ignore[method-assign]
