"""``Reject``: why a message's field fails its check, in words a person can act on.

Its own module, with no imports, so the image judge's child process can raise it without
importing the rest of the decoder (pydantic, the settings).
"""

from __future__ import annotations


class Reject(Exception):
    """A field that fails its check; ``decode_message`` turns it into ``Rejected``."""

    def __init__(self, reason: str, status: int | None = None, name: str | None = None):
        super().__init__(reason)
        self.status, self.name = status, name
