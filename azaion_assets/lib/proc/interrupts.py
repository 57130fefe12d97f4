"""Deferring a cancel (SIGINT/SIGTERM) to a point where stopping is safe.

Dagster cancels a run by sending SIGINT to the step's process, and its handler raises at once,
wherever the step is: in the middle of an optimiser step or of Ultralytics writing ``last.pt``.
Training instead notes the request, finishes the current batch, writes a resumable checkpoint
and only then lets the interrupt through, by raising the same signal again under the original
handlers. A second signal while waiting interrupts immediately, as an escape hatch.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class StopRequest:
    signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None


@contextmanager
def deferred_interrupts() -> Iterator[StopRequest]:
    """Record SIGINT/SIGTERM instead of acting on them; re-raise the first one on exit.

    Outside the main thread signals cannot be handled, so the request is never set there and
    interrupts behave as before.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.getsignal(s) for s in _SIGNALS}

    def _note(signum: int, _frame: object) -> None:
        if request.signum is not None:
            raise KeyboardInterrupt  # asked twice: stop now
        request.signum = signum

    for s in _SIGNALS:
        signal.signal(s, _note)
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if request.signum is not None:
            signal.raise_signal(request.signum)
