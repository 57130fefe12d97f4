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
from typing import IO

BIN = Path(sys.executable).parent


@contextmanager
def local_daemon(
    workspace: Path, cwd: Path, env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen]:
    """Run the daemon on ``workspace`` until the block ends; its output goes to ``log``."""
    with open(log, "w") as out:
        argv = [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)]
        proc = start_in_session(argv, cwd, env, out)
        try:
            yield proc
        finally:
            stop_group(proc)


def _as_systemd_starts() -> None:
    """In the child: systemd starts a service with every signal at its default. A process
    started from a non-interactive shell's background job inherits SIGINT ignored, and Dagster
    then ignores SIGTERM too (it maps SIGTERM to SIGINT's handler)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def start_in_session(
    argv: list[str], cwd: Path, env: Mapping[str, str], log: IO[bytes] | IO[str]
) -> subprocess.Popen:
    """``argv`` in a session (and process group) of its own, with default signal dispositions
    as systemd gives a service, output appended to ``log``."""
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_as_systemd_starts,
    )


def stop_group(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """SIGTERM the process's group, SIGKILL it after ``timeout`` seconds, and reap it."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
