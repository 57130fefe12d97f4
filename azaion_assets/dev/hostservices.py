"""The host-process services of ``deploy/systemd``: their unit files, read as systemd reads
them as systemd reads them (the readiness wait is ``azaion-assets wait-code-server``).

The tests and ``bench.code_server_churn`` start the code server and the daemon with the exact
command lines of the units (only the venv the units assume is replaced by the running one), in a
session of their own with default signal dispositions, as systemd starts a service, and stop them
as the unit's ``KillMode=`` says: the main process only (``process``), or all of it (the default,
``control-group``; here the process group stands for the cgroup).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

UNIT_VENV_BIN = "/opt/azaion-assets/.venv/bin"  # where the units expect `make install`'s venv
CODE_SERVER = "azaion-code-server.service"
DAEMON = "azaion-dagster-daemon.service"
WEBSERVER = "azaion-dagster-webserver.service"
UNITS = (CODE_SERVER, DAEMON, WEBSERVER)

Unit = dict[str, dict[str, list[str]]]  # section -> key -> values, in order


class UnitError(ValueError):
    """A unit file this reader does not accept (it accepts a strict subset of systemd's)."""


def read_unit(path: Path) -> Unit:
    """Sections and their settings, as systemd reads them: ``#``/``;`` comment lines, a trailing
    backslash continues a line, a key set twice keeps both values (ExecStart=, After=), and an
    empty assignment resets the key's list."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    lines = path.read_text("utf-8").splitlines()
    logical: list[str] = []
    pending = ""
    for line in lines:
        stripped = line.strip()
        if not pending and (not stripped or stripped[0] in "#;"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    if pending:
        raise UnitError(f"{path}: the last line ends in a continuation")
    for line in logical:
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        if section is None or "=" not in line:
            raise UnitError(f"{path}: not a setting inside a section: {line!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key):
            raise UnitError(f"{path}: bad key {key!r}")
        if value:
            section.setdefault(key, []).append(value)
        else:
            section[key] = []
    return unit


def read_env_file(path: Path) -> dict[str, str]:
    """An ``EnvironmentFile=`` as systemd reads it, in the subset where systemd, a shell and
    pydantic-settings' .env reader agree: ``KEY=value`` lines and ``#`` comment lines; values
    without quotes, backslashes or ``$``, taken as they are (systemd does not strip a trailing
    ``# ...`` from a value)."""
    env: dict[str, str] = {}
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=([^\"'$]*)", line)
        if match is None:
            raise UnitError(f"{path}:{number}: not a plain KEY=value line: {line!r}")
        env[match[1]] = match[2]
    return env


def setting(unit: Unit, section: str, key: str, default: str | None = None) -> str | None:
    """The last value of a single-valued setting (systemd's rule: the last one wins)."""
    values = unit.get(section, {}).get(key)
    return values[-1] if values else default


def environment(unit: Unit) -> dict[str, str]:
    """The unit's ``Environment=`` assignments (quoted as in a shell; later ones win)."""
    env: dict[str, str] = {}
    for value in unit.get("Service", {}).get("Environment", []):
        if "%" in value or "$" in value:
            raise UnitError(f"specifiers and variables are not supported: {value!r}")
        for assignment in shlex.split(value):
            key, sep, val = assignment.partition("=")
            if not sep:
                raise UnitError(f"not an assignment: {assignment!r}")
            env[key] = val
    return env


def exec_argv(value: str) -> list[str]:
    """An ``Exec*=`` command line as argv. Specifiers (``%``) and variables (``$``) are refused,
    so a command that systemd would expand never runs here unexpanded."""
    command = value.lstrip("@-:+!")
    if "%" in command or "$" in command:
        raise UnitError(f"specifiers and variables are not supported: {value!r}")
    return shlex.split(command)


def service_commands(unit_path: Path, key: str, bin_dir: Path | None = None) -> list[list[str]]:
    """The unit's ``key=`` commands (ExecStart, ExecStartPost, ...) in order, each run from the
    units' venv, which is replaced by ``bin_dir``."""
    commands = []
    for value in read_unit(unit_path).get("Service", {}).get(key, []):
        argv = exec_argv(value)
        program = Path(argv[0])
        if str(program.parent) != UNIT_VENV_BIN:
            raise UnitError(f"{unit_path}: {key}= does not run from {UNIT_VENV_BIN}: {argv[0]}")
        if bin_dir is not None:
            argv[0] = str(bin_dir / program.name)
        commands.append(argv)
    return commands


def service_argv(unit_path: Path, bin_dir: Path | None = None) -> list[str]:
    """The unit's one ``ExecStart=`` command, with the units' venv replaced by ``bin_dir``."""
    starts = service_commands(unit_path, "ExecStart", bin_dir)
    if len(starts) != 1:
        raise UnitError(f"{unit_path}: expected one ExecStart=, found {len(starts)}")
    return starts[0]


def port_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port``. Check before starting the code server: gRPC
    binds with SO_REUSEPORT, so a second server on a taken port starts without an error and
    the kernel deals the connections between the two."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT, not LISTEN
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def stop(proc: subprocess.Popen, kill_mode: str = "control-group", timeout: float = 60) -> int:
    """Stop ``proc`` as systemd stops a unit with ``kill_mode``, ``timeout`` being its
    TimeoutStopSec=. ``control-group``: SIGTERM to every process, SIGKILL to those left at the
    timeout. ``process``: SIGTERM to the main process, SIGKILL to it at the timeout; the others
    are left running. ``mixed``: SIGTERM to the main process, then SIGKILL to every process left
    once it has exited (or at the timeout). Returns the main process's exit status."""
    if kill_mode not in ("process", "control-group", "mixed"):
        raise ValueError(f"unsupported KillMode {kill_mode!r}")
    deadline = time.monotonic() + timeout
    if kill_mode == "control-group":
        _signal_group(proc, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    try:
        status = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        status = proc.wait()
    if kill_mode == "control-group":
        while _signal_group(proc, 0) and time.monotonic() < deadline:
            time.sleep(0.1)
    if kill_mode != "process":
        _signal_group(proc, signal.SIGKILL)
    return status


def _signal_group(proc: subprocess.Popen, sig: int) -> bool:
    """Send ``sig`` to ``proc``'s process group; False if no process is left in it."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return False
    return True
