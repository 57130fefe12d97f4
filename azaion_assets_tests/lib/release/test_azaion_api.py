"""The Azaion API client against the local API over real HTTP: login, upload, hardware-bound
download, a new login on token expiry (once), backoff on 5xx / no answer / timeouts, no retry
of refusals, and no password or token in any log line, exception or repr."""

import json
import logging
import socket
from collections.abc import Iterator

import pytest

from azaion_assets.dev.localapi import LocalAzaionApi
from azaion_assets.lib.release.azaion_api import ApiError, AzaionApi
from azaion_assets.lib.release.crypto import decrypt
from azaion_assets.lib.release.hardware import hardware_key
from azaion_assets_tests.conftest import API_EMAIL, API_PASSWORD

HW = "CPU: test. GPU: none. Memory: 1 GiB. DriveSerial: T1."


@pytest.fixture
def server() -> Iterator[LocalAzaionApi]:
    with LocalAzaionApi(API_EMAIL, API_PASSWORD) as api:
        yield api


def client(url: str, sleeps: list[float] | None = None, **kwargs) -> AzaionApi:
    record = sleeps if sleeps is not None else []
    options = {"retries": 3, "backoff": 0.5, "timeout": 5.0, **kwargs}
    return AzaionApi(url, API_EMAIL, API_PASSWORD, sleep=record.append, **options)


def paths(server: LocalAzaionApi) -> list[tuple[str, int]]:
    return [(path, status) for _, path, status in server.requests]


def test_upload_replaces_by_name_and_fetch_decrypts_for_this_machine(server):
    api = client(server.url)
    api.upload("models", "a.small", b"first")
    api.upload("models", "a.small", b"second")
    assert server.folders["models"] == {"a.small": b"second"}
    assert api.fetch("models", "a.small", HW) == b"second"
    blob = api.download("models", "a.small", HW)  # as served: encrypted for this hardware
    assert decrypt(blob, hardware_key(HW, API_EMAIL, API_PASSWORD), "aes-256-cbc") == b"second"
    assert b"second" not in blob
    assert api.logins == 1 and server.logins == 1


def test_an_expired_token_means_one_new_login_and_the_request_goes_through(server):
    api = client(server.url)
    api.upload("models", "x", b"1")
    server.expire_tokens()
    api.upload("models", "y", b"2")
    assert server.folders["models"] == {"x": b"1", "y": b"2"}
    assert api.logins == 2
    expected = [("/resources/models", 401), ("/login", 200), ("/resources/models", 200)]
    assert paths(server)[-3:] == expected


def test_a_403_also_means_one_new_login(server):
    api = client(server.url)
    api.upload("models", "x", b"1")
    server.fail_next(1, status=403)
    api.upload("models", "y", b"2")
    expected = [("/resources/models", 403), ("/login", 200), ("/resources/models", 200)]
    assert paths(server)[-3:] == expected and api.logins == 2


def test_a_refusal_after_a_new_login_is_raised_not_looped():
    with LocalAzaionApi(API_EMAIL, API_PASSWORD, token_ttl=0) as server:  # tokens die at once
        api = client(server.url)
        with pytest.raises(ApiError, match="refused \\(HTTP 401\\) even after a new login") as e:
            api.upload("models", "x", b"1")
        assert e.value.status == 401
        assert server.logins == 2 and len(server.requests) == 4


def test_wrong_credentials_name_the_variables_not_the_values(server):
    api = AzaionApi(server.url, API_EMAIL, "wrong-password-value", sleep=lambda s: None)
    with pytest.raises(ApiError) as caught:
        api.upload("models", "x", b"1")
    assert caught.value.status == 401
    assert "AZAION_API_EMAIL and AZAION_API_PASSWORD" in str(caught.value)
    assert "wrong-password-value" not in str(caught.value)
    assert len(server.requests) == 1  # a refused login is not retried


def test_5xx_answers_are_retried_with_exponential_backoff(server):
    sleeps: list[float] = []
    api = client(server.url, sleeps)
    api.login()
    server.fail_next(3, status=503)
    api.upload("models", "x", b"1")
    assert sleeps == [0.5, 1.0, 2.0]
    assert [s for _, s in paths(server)] == [200, 503, 503, 503, 200]


def test_5xx_beyond_the_retries_is_raised_with_its_status(server):
    sleeps: list[float] = []
    api = client(server.url, sleeps, retries=2)
    api.login()
    server.fail_next(5, status=502)
    with pytest.raises(ApiError, match="upload models/x: HTTP 502, after 3 attempts") as caught:
        api.upload("models", "x", b"1")
    assert caught.value.status == 502 and sleeps == [0.5, 1.0]


def test_a_4xx_is_not_retried(server):
    api = client(server.url)
    with pytest.raises(ApiError, match="HTTP 404") as caught:
        api.fetch("models", "missing", HW)
    assert caught.value.status == 404
    assert paths(server) == [("/login", 200), ("/resources/get/models", 404)]


def test_no_answer_is_retried_then_raised():
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []
    api = client(f"http://127.0.0.1:{port}", sleeps, retries=2)
    pattern = r"no answer from http://127\.0\.0\.1:.*after 3 attempts"
    with pytest.raises(ApiError, match=pattern) as e:
        api.login()
    assert e.value.status is None and sleeps == [0.5, 1.0]
    assert e.value.__context__ is None and e.value.__cause__ is None  # requests' text stays out


def test_429_is_retried_after_the_servers_retry_after(server):
    sleeps: list[float] = []
    api = client(server.url, sleeps)
    api.login()
    server.fail_next(1, status=429, headers={"Retry-After": "7"})
    server.fail_next(1, status=429, headers={"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"})
    api.upload("models", "x", b"1")
    assert sleeps == [7.0, 1.0]  # the server's wait, then the backoff (a date is not read)
    assert server.folders["models"] == {"x": b"1"}


def test_429_beyond_the_retries_is_an_outage_not_a_refusal(server):
    api = client(server.url, retries=1)
    api.login()
    server.fail_next(2, status=429)
    with pytest.raises(ApiError, match="HTTP 429, after 2 attempts") as caught:
        api.upload("models", "x", b"1")
    assert caught.value.transient
    server.fail_next(1, status=400)
    with pytest.raises(ApiError) as refused:
        api.upload("models", "x", b"1")
    assert not refused.value.transient


def test_an_answer_cut_off_midway_is_retried(server):
    sleeps: list[float] = []
    api = client(server.url, sleeps)
    server.fail_next(1, status=0, cut_short=True)  # the token, then a closed connection
    api.login()
    assert sleeps == [0.5] and api.logins == 1
    assert paths(server) == [("/login", 200), ("/login", 200)]


def test_a_redirect_is_not_followed_so_the_password_goes_nowhere_else(server):
    with LocalAzaionApi(API_EMAIL, API_PASSWORD) as elsewhere:
        server.fail_next(1, status=307, headers={"Location": f"{elsewhere.url}/login"})
        with pytest.raises(ApiError, match="HTTP 307, a redirect, not followed") as caught:
            client(server.url).login()
        assert not caught.value.transient
        assert elsewhere.requests == []


BAD_URLS = {
    "bad-port": "https://trainer:S3cretPW@api.azaion.local:99999/x",  # InvalidURL, with the URL
    "no-scheme": "trainer:S3cretPW@api.azaion.local",  # the whole value would be echoed
    "slash-in-password": "https://trainer:Xy7/S3cretPW@api.azaion.local",  # ends the authority
    "unparseable": "http://trainer:S3cretPW@[::1/",  # urlsplit raises ValueError
    "empty-label": "http://a..b/S3cretPW",  # urllib3: LocationParseError
}


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
def test_a_bad_url_is_a_permanent_api_error_that_shows_no_password(url):
    with pytest.raises(ApiError) as caught:
        AzaionApi(url, API_EMAIL, API_PASSWORD, retries=0, sleep=lambda s: None).login()
    assert "S3cretPW" not in str(caught.value) and "Xy7" not in str(caught.value)
    assert not caught.value.transient
    assert caught.value.__context__ is None and caught.value.__cause__ is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://trainer:Xy7/S3cretPW@api.azaion.local/v1", "https://api.azaion.local"),
        ("https://trainer:123/S3cretPW@api.azaion.local", "https://api.azaion.local"),
        ("http://127.0.0.1:8080/api?x=1", "http://127.0.0.1:8080"),
    ],
)
def test_messages_show_only_the_scheme_and_host(url, shown):
    assert repr(AzaionApi(url, API_EMAIL, API_PASSWORD)) == f"AzaionApi({shown!r})"


def test_only_an_outage_that_outlasts_the_retries_is_transient(server):
    api = client(server.url, retries=0)
    server.fail_next(1, status=503)
    with pytest.raises(ApiError) as outage:
        api.login()
    with pytest.raises(ApiError, match="HTTP 404") as missing:
        api.fetch("models", "missing", HW)
    with pytest.raises(ApiError, match="must be an http") as bad_url:
        AzaionApi("ftp://h", API_EMAIL, API_PASSWORD)
    assert outage.value.transient
    assert not missing.value.transient and not bad_url.value.transient


def test_a_stalled_answer_times_out_and_is_retried(server):
    sleeps: list[float] = []
    api = client(server.url, sleeps, timeout=1.0)
    api.login()
    server.fail_next(1, status=0, delay=2.5)  # the normal answer, too late
    api.upload("models", "x", b"1")
    assert sleeps == [0.5]
    assert server.folders["models"] == {"x": b"1"}


def test_no_secret_in_logs_errors_or_repr(server, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 and requests included
    api = client(server.url, retries=1)
    api.upload("models", "x", b"1")
    server.expire_tokens()
    server.fail_next(1, status=500)
    api.upload("models", "y", b"2")
    token = api._token
    errors = []
    for call in (lambda: api.fetch("models", "missing", HW), lambda: client("ftp://h").login()):
        with pytest.raises(ApiError) as caught:
            call()
        errors.append(str(caught.value))
    url_with_userinfo = server.url.replace("http://", f"http://{API_EMAIL}:{API_PASSWORD}@")
    shown = [caplog.text, repr(api), repr(AzaionApi(url_with_userinfo, API_EMAIL, API_PASSWORD))]
    assert token and "token has expired" in caplog.text and "retrying" in caplog.text
    for secret in (API_PASSWORD, token):
        for text in [*shown, *errors]:
            assert secret not in text


@pytest.mark.parametrize("lead", [0, 185, 187])
def test_a_server_echoing_the_password_has_it_blanked_wherever_it_falls(server, lead):
    """Blanked before the message is cut to 200 characters (at 185 and 187 the password
    straddles the cut), and in its JSON-escaped form too."""
    quoted = 'pa"ss\\word-echoed'
    api = AzaionApi(server.url, API_EMAIL, quoted, sleep=lambda s: None)
    server.fail_next(1, status=400, body=json.dumps({"error": "x" * lead + quoted}).encode())
    with pytest.raises(ApiError, match="HTTP 400") as caught:
        api.login()
    text = str(caught.value)
    assert "***" in text or lead == 187  # at 187 the cut falls inside the blank itself
    for fragment in ('pa\\"s', 'pa"s', "word-echoed", "ss\\\\wo"):
        assert fragment not in text
