"""``dagster-daemon run`` as tests and benchmarks start it: in a process group of its own.

The daemon's code server and the run workers it launches share that group, so stopping the
group leaves no process behind (a daemon started in the caller's group would also take the
SIGINT meant for the caller). Dev tooling: the shipped services are in deploy/.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

BIN = Path(sys.executable).parent


@contextmanager
def local_daemon(
    workspace: Path, cwd: Path, env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen]:
    """Run the daemon on ``workspace`` until the block ends; its output goes to ``log``."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            stop_group(proc)


def stop_group(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """SIGTERM the process's group, SIGKILL it after ``timeout`` seconds, and reap it."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
