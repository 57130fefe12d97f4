"""A local stand-in for the Azaion REST API, speaking the contract of docs/azaion-api.md.

The real API cannot run here, so the tests and the demo run this one over real HTTP on
loopback. It holds one account and its resources in memory, hands out expiring bearer tokens,
serves resources encrypted with the caller's hardware-bound key, and can be told to misbehave
(expire every token, answer 5xx, stall) so that the client's recovery is tested for real.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from azaion_assets.lib.release.crypto import encrypt
from azaion_assets.lib.release.hardware import hardware_key


@dataclass(frozen=True)
class Fault:
    """How to misanswer one request (status 0: answer normally, after ``delay``)."""

    status: int = 0
    delay: float = 0.0
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    cut_short: bool = False


class LocalAzaionApi:
    def __init__(self, email: str, password: str, token_ttl: float = 3600.0):
        self.email = email
        self.password = password
        self.token_ttl = token_ttl
        self.folders: dict[str, dict[str, bytes]] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.logins = 0
        self._tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self._faults: list[Fault] = []  # what the next requests get instead
        self.uploads: list[tuple[str, str]] = []  # (folder, name), in order
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> LocalAzaionApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- controls for tests ---
    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def fail_next(
        self,
        count: int,
        status: int = 503,
        delay: float = 0.0,
        body: bytes = b'{"error": "injected failure"}',
        headers: dict[str, str] | None = None,
        cut_short: bool = False,
    ) -> None:
        """Answer the next ``count`` requests with ``status``, ``headers`` and ``body`` (status
        0: the normal answer), each after ``delay`` seconds; ``cut_short``: announce twice the
        body's length, send it, and close the connection (an answer cut off mid-way)."""
        with self._lock:
            self._faults.extend([Fault(status, delay, body, headers or {}, cut_short)] * count)

    def put(self, folder: str, name: str, data: bytes) -> None:
        with self._lock:
            self.folders.setdefault(folder, {})[name] = data

    # --- request handling ---
    def _fault(self) -> Fault:
        with self._lock:
            return self._faults.pop(0) if self._faults else Fault()

    def _authorised(self, header: str | None) -> bool:
        token = (header or "").removeprefix("Bearer ").strip()
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and expiry > time.monotonic()

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, bytes, Fault]:
        """The status and body to send, and the fault (if any) that shapes how."""
        fault = self._fault()
        if fault.delay:
            time.sleep(fault.delay)
        if fault.status:
            return fault.status, fault.body, fault
        return (*self._answer(method, path, headers, body), fault)

    def _answer(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, bytes]:
        if method != "POST":
            return 405, b""
        if path == "/login":
            return self._login(body)
        if not self._authorised(headers.get("Authorization")):
            return 401, b'{"error": "token expired or invalid"}'
        if path.startswith("/resources/get/"):
            return self._download(unquote(path.removeprefix("/resources/get/")), body)
        if path.startswith("/resources/"):
            return self._upload(unquote(path.removeprefix("/resources/")), headers, body)
        return 404, b""

    def _login(self, body: bytes) -> tuple[int, bytes]:
        try:
            given = json.loads(body)
        except ValueError:
            return 400, b'{"error": "expected JSON"}'
        if given.get("email") != self.email or given.get("password") != self.password:
            return 401, b'{"error": "wrong email or password"}'
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_ttl
            self.logins += 1
        return 200, json.dumps({"token": token}).encode()

    def _upload(self, folder: str, headers: Any, body: bytes) -> tuple[int, bytes]:
        head = f"Content-Type: {headers.get('Content-Type', '')}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "data":
                name = part.get_filename()
                data = part.get_payload(decode=True)
                if not name or not isinstance(data, bytes):
                    break
                self.put(folder, name, data)
                self.uploads.append((folder, name))
                return 200, json.dumps({"folder": folder, "name": name}).encode()
        return 400, b'{"error": "expected a multipart file field named data"}'

    def _download(self, folder: str, body: bytes) -> tuple[int, bytes]:
        try:
            given = json.loads(body)
            name, hardware = given["fileName"], given["hardware"]
        except (ValueError, KeyError, TypeError):
            return 400, b'{"error": "expected JSON with fileName and hardware"}'
        if given.get("password") != self.password:
            return 403, b'{"error": "wrong password"}'
        with self._lock:
            data = self.folders.get(folder, {}).get(name)
        if data is None:
            return 404, b'{"error": "no such resource"}'
        key = hardware_key(hardware, self.email, self.password)
        return 200, encrypt(data, key, "aes-256-cbc")


def _handler(api: LocalAzaionApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self._serve("POST")

        def do_GET(self) -> None:
            self._serve("GET")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, payload, fault = api.handle(method, self.path, self.headers, body)
            api.requests.append((method, self.path, status))
            announced = len(payload) * 2 + 1 if fault.cut_short else len(payload)
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(announced))
                self.send_header("Content-Type", "application/octet-stream")
                for name, value in fault.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test)
            if fault.cut_short:
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read .requests
            return

    return Handler
