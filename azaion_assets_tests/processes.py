"""Processes as the tests see them in ``/proc``: whether one still runs, waiting for its end."""

import time
from pathlib import Path


def alive(pid: int) -> bool:
    """Running, not a zombie (an orphan is reaped by init, or by us as its subreaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def ends_within(pid: int, seconds: float) -> bool:
    """Whether ``pid`` stops running within ``seconds``."""
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)
