"""A client of the Azaion REST API: log in, upload a resource, download one (docs/azaion-api.md).

Why it is written this way:
- **Tokens expire.** A 401 or 403 means the bearer token is stale, so the client logs in again,
  once per request; a second refusal is a real permission problem and is raised.
- **Networks fail.** Connection errors, timeouts, answers cut off, 5xx and 429 answers are
  retried with exponential backoff (longer if the server's Retry-After says so); every upload
  replaces the resource of the same name, so a retried upload cannot duplicate it.
- **Secrets stay secret.** The password and the token are never put in a log line or an
  exception: errors are built from the operation, the path and the status, any text the server
  sends back is scrubbed of both, and exceptions from ``requests`` are not chained (their text
  can carry the request). Redirects are not followed: one would re-post the password to
  whatever address it names.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from azaion_assets.lib.release.crypto import DecryptionError, decrypt
from azaion_assets.lib.release.hardware import hardware_key
from azaion_assets.lib.text import plural

if TYPE_CHECKING:
    from azaion_assets.lib.config.settings import Settings

log = logging.getLogger(__name__)
BACKOFF_CAP_SECONDS = 30.0
# No answer, or an answer cut off: worth another attempt.
TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class ApiError(RuntimeError):
    """A request to the Azaion API failed; ``status`` is the HTTP status, None without one.

    ``transient``: an outage (no answer, 5xx, 429) that outlasted the client's retries and may
    yet end; everything else (a refusal, a bad URL, a resource that does not decrypt for this
    machine) will not change on a retry."""

    def __init__(self, message: str, status: int | None = None, transient: bool = False):
        super().__init__(message)
        self.status = status
        self.transient = transient


def _retry_after(response: requests.Response) -> float | None:
    """The server's Retry-After in seconds, when it gives a number."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the backoff applies


def _safe_base(url: str) -> str:
    """Where ``url`` points, for messages: its scheme and host (with port), nothing else. A
    user part is dropped even when its password holds a "/" (which ends the authority for a URL
    parser and would show the rest of the password as a path): the host is taken after the
    last "@". Nothing of a value that is not an http(s) URL is shown."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        return "(not an http(s) URL; the value is not shown)"
    host = re.split(r"[/?#]", rest.rsplit("@", 1)[-1], maxsplit=1)[0]
    return f"{scheme}://{host}"


class AzaionApi:
    def __init__(
        self,
        url: str,
        email: str,
        password: str,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not url.startswith(("http://", "https://")):
            raise ApiError("AZAION_API_URL must be an http(s) URL; the value is not shown")
        self._base = url.rstrip("/")
        self._email = email
        self._password = password
        self._token: str | None = None
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep
        self._session = requests.Session()
        self.logins = 0  # how many times a token was obtained (for records and tests)

    def __repr__(self) -> str:
        return f"AzaionApi({_safe_base(self._base)!r})"

    # --- the endpoints ---
    def login(self) -> None:
        body = {"email": self._email, "password": self._password}
        response = self._request("POST", "/login", "log in", auth=False, json=body)
        try:
            token = response.json()["token"]
        except (ValueError, KeyError, TypeError):
            raise ApiError("log in: the answer has no token") from None
        if not isinstance(token, str) or not token:
            raise ApiError("log in: the answer has no token")
        self._token = token
        self.logins += 1

    def upload(self, folder: str, name: str, data: bytes) -> None:
        """Store ``data`` as resource ``name`` in ``folder``, replacing one of that name."""
        files = {"data": (name, data, "application/octet-stream")}
        self._request("POST", f"/resources/{quote(folder)}", f"upload {folder}/{name}", files=files)
        log.info("uploaded %s/%s (%d bytes) to the Azaion API", folder, name, len(data))

    def download(self, folder: str, name: str, hardware: str) -> bytes:
        """Resource ``name`` of ``folder``, encrypted by the API with this machine's key."""
        body = {"fileName": name, "hardware": hardware, "password": self._password}
        what = f"download {folder}/{name}"
        return self._request("POST", f"/resources/get/{quote(folder)}", what, json=body).content

    def fetch(self, folder: str, name: str, hardware: str) -> bytes:
        """Resource ``name`` of ``folder``, downloaded and decrypted with the hardware-bound key
        of this machine and account (kept in memory; the caller decides what to keep)."""
        blob = self.download(folder, name, hardware)
        key = hardware_key(hardware, self._email, self._password)
        try:
            return decrypt(blob, key, "aes-256-cbc")
        except DecryptionError:
            raise ApiError(
                f"fetch {folder}/{name}: cannot decrypt it with this machine's hardware-bound "
                "key (the API encrypted it for other hardware or another account)"
            ) from None

    # --- plumbing ---
    def _request(
        self, method: str, path: str, what: str, *, auth: bool = True, **kwargs: Any
    ) -> requests.Response:
        attempt = 0
        logged_in_anew = False
        while True:
            if auth and self._token is None:
                self.login()
            headers = {"Authorization": f"Bearer {self._token}"} if auth else {}
            response, problem = self._send(method, path, what, headers, kwargs)
            if response is None:
                attempt = self._retry_or_raise(what, problem, attempt, None, None)
                continue
            status = response.status_code
            if status >= 500 or status == 429:
                wait = _retry_after(response)
                attempt = self._retry_or_raise(what, f"HTTP {status}", attempt, status, wait)
                continue
            if status in (401, 403):
                if not auth:
                    raise ApiError(
                        f"{what}: refused (HTTP {status}); check AZAION_API_EMAIL and "
                        "AZAION_API_PASSWORD",
                        status,
                    )
                if not logged_in_anew:
                    log.info("%s: HTTP %d, the token has expired; logging in again", what, status)
                    self._token = None
                    logged_in_anew = True
                    continue
                raise ApiError(f"{what}: refused (HTTP {status}) even after a new login", status)
            if 300 <= status < 400:
                raise ApiError(
                    f"{what}: HTTP {status}, a redirect, not followed (it would send the "
                    "credentials to another address); set AZAION_API_URL to the final address",
                    status,
                )
            if status >= 400:
                raise ApiError(f"{what}: HTTP {status}{self._detail(response)}", status)
            return response

    def _send(
        self, method: str, path: str, what: str, headers: dict[str, str], kwargs: dict[str, Any]
    ) -> tuple[requests.Response | None, str]:
        """One request: the response, or None and why there was none (worth a retry). Other
        failures of ``requests`` (a malformed URL, say) are raised as ``ApiError`` unchained:
        their text can carry the URL and the request."""
        try:
            response = self._session.request(
                method,
                self._base + path,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,  # a redirect would re-post the password elsewhere
                **kwargs,
            )
            return response, ""
        except TRANSIENT as exc:
            return None, f"no answer from {_safe_base(self._base)} ({type(exc).__name__})"
        except (requests.RequestException, ValueError) as exc:  # ValueError: urllib3's
            kind = type(exc).__name__  # LocationParseError, UnicodeError: URLs it cannot parse
        raise ApiError(f"{what}: {kind}, at {_safe_base(self._base)}")  # outside: unchained

    def _retry_or_raise(
        self, what: str, problem: str, attempt: int, status: int | None, wait: float | None
    ) -> int:
        if attempt >= self._retries:
            tried = plural(attempt + 1, "attempt")
            raise ApiError(f"{what}: {problem}, after {tried}", status, True)
        delay = min(BACKOFF_CAP_SECONDS, max(self._backoff * 2**attempt, wait or 0.0))
        log.warning("%s: %s; retrying in %.1f s", what, problem, delay)
        self._sleep(delay)
        return attempt + 1

    def _detail(self, response: requests.Response) -> str:
        """The server's own words, briefly, with any secret of ours blanked out first."""
        text = response.text.strip()
        for secret in (self._password, self._token):
            if secret:
                for form in {secret, json.dumps(secret)[1:-1]}:  # as sent, and JSON-escaped
                    text = text.replace(form, "***")
        text = text[:200]
        return f": {text}" if text else ""


def api_from_settings(settings: Settings) -> AzaionApi:
    """A client for the configured API; a missing credential raises ``ConfigError`` naming it."""
    return AzaionApi(
        settings.azaion_api_url,
        settings.require("AZAION_API_EMAIL"),
        settings.require("AZAION_API_PASSWORD"),
        timeout=settings.azaion_api_timeout_seconds,
        retries=settings.azaion_api_retries,
        backoff=settings.azaion_api_backoff_seconds,
    )
