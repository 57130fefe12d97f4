"""A throwaway RabbitMQ broker with the stream plugin, for tests, the demo and benchmarks.

It runs Debian's ``rabbitmq-server`` in the foreground with its own node name, ports and
directories, so it needs no root state and never touches the machine's own broker. The user and
a random password are created at boot from the config file; nothing is hard-coded.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from azaion_assets.dev.localdaemon import stop_group
from azaion_assets.lib.stream.stream_connection import StreamTarget

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
STREAM_PLUGIN = "rabbitmq_stream"


class BrokerError(RuntimeError):
    """The broker could not be started; the message says why and where its log is."""


class BrokerExited(BrokerError):
    """The broker stopped while booting (a port taken by another process, most often)."""


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free a moment ago (all bound at once, then released)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class LocalBroker:
    """One broker node under ``base``; use as a context manager or call start/stop."""

    base: Path | None = None
    user: str = "azaion_receiver"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    host: str = "127.0.0.1"
    stream_port: int = 0  # 0: distinct free ports are picked
    amqp_port: int = 0
    dist_port: int = 0
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _owns_base: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if 0 in self.ports:
            self._pick_ports()

    @property
    def ports(self) -> tuple[int, int, int]:
        return self.stream_port, self.amqp_port, self.dist_port

    def _pick_ports(self) -> None:
        self.stream_port, self.amqp_port, self.dist_port = free_ports(3)

    def target(self, stream: str) -> StreamTarget:
        """``stream`` on this broker, as the stream client addresses it."""
        return StreamTarget(self.host, self.stream_port, self.user, self.password, stream)

    @property
    def node(self) -> str:
        return f"azaion-{self.stream_port}@localhost"

    @property
    def log_file(self) -> Path:
        assert self.base is not None
        return self.base / "log" / f"{self.node}.log"

    def _env(self) -> dict[str, str]:
        assert self.base is not None
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        return {
            **inherited,  # any RABBITMQ_ALLOW_INPUT, even "false", would start an Erlang shell
            "HOME": str(self.base / "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),  # .conf is appended
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
            # A node that fails to boot (a port taken) writes an Erlang crash dump; by default
            # into the working directory, which is the caller's checkout.
            "ERL_CRASH_DUMP": str(self.base / "log" / "erl_crash.dump"),
        }

    def _write_config(self) -> None:
        assert self.base is not None
        for sub in ("home", "mnesia", "log"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text(f"[{STREAM_PLUGIN}].\n")
        conf = self.base / "rabbitmq.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listeners.tcp.1 = {self.host}:{self.amqp_port}",
                    f"stream.listeners.tcp.1 = {self.host}:{self.stream_port}",
                    "stream.advertised_host = localhost",
                    f"stream.advertised_port = {self.stream_port}",
                    f"default_user = {self.user}",
                    f"default_pass = {self.password}",
                    "default_permissions.configure = .*",
                    "default_permissions.read = .*",
                    "default_permissions.write = .*",
                    "loopback_users = none",
                    "log.console = false",
                    "log.file.level = warning",
                    "",
                ]
            )
        )
        conf.chmod(0o600)

    def start(self, timeout: float = 60.0) -> LocalBroker:
        if not SERVER.exists():
            raise BrokerError(f"{SERVER} not found: install Debian's rabbitmq-server package")
        if self.base is None:
            self.base = Path(tempfile.mkdtemp(prefix="azaion-broker-"))
            self._owns_base = True
        self._write_config()
        self._proc = subprocess.Popen(
            [str(SERVER)],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # our own process group: stop() takes Erlang down with it
            cwd=self.base,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerExited(
                    f"broker exited with {self._proc.returncode}; see {self.log_file}"
                )
            if port_open(self.host, self.stream_port):
                return self
            time.sleep(0.2)
        self.stop()
        raise BrokerError(f"broker not ready after {timeout:.0f}s; see {self.log_file}")

    def stop(self, timeout: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            stop_group(proc, timeout)
        if self._owns_base and self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start the same node, keeping its data (streams survive)."""
        owns, self._owns_base = self._owns_base, False
        self.stop()
        self._owns_base = owns
        self.start()

    def __enter__(self) -> LocalBroker:
        """A fresh broker: its ports were free when picked, but another process may have taken
        one since (the broker then fails to boot); pick new ones and try again, once."""
        if not all(_bindable(self.host, port) for port in self.ports):
            self._pick_ports()
        try:
            return self.start()
        except BrokerExited:
            self.stop()
            self._pick_ports()
            return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
