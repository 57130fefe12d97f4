"""Shared fixtures: a hermetic environment, a data tree in tmp, and an outbound-network guard."""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance

from azaion_assets.dev.localapi import LocalAzaionApi
from azaion_assets.dev.localbroker import LocalBroker
from azaion_assets.dev.localcdn import ROLES, LocalCdn
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.config.sources import load_settings
from azaion_assets.lib.release.cdn import CDN_CONFIG, CdnConfig
from azaion_assets.lib.release.cdn import get_bytes as cdn_get
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets.lib.stream.stream_connection import StreamTarget

CONFIG_PREFIXES = (  # every settings variable starts with one of these
    "AZAION_",
    "RABBITMQ_",
    "TRAINING_",
    "EXPORT_",
    "DATASET_",
    "STREAM_",
    "RETRAIN_",
    "RELEASE_",
    "MODEL_",
    "K8S_",
    "DAILY_",
    "HEALTH_",
    "MONITOR_",
    "KEEP_",
    "HOUSEKEEPING_",
    "PICTURES_",
)

# Tests that start a broker, a daemon or a code server, or train or export a model, are slow and
# `make test-fast` leaves them out. Those using a broker or the local CDN are marked here by
# their fixtures, and those under e2e/ by their folder; the rest carry @pytest.mark.slow.
SLOW_FIXTURES = {
    "broker",
    "_truncated",
    "stream",
    "stream_env",
    "truncated_stream",
    "local_cdn",
    "release_services",
    "release_env",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SLOW_FIXTURES or "e2e" in item.path.parts:
            item.add_marker(pytest.mark.slow)


# A tiny, CPU-friendly training profile used by every test that trains.
TINY_PROFILE = {
    "TRAINING_MODEL": "yolo26n.yaml",
    "TRAINING_EPOCHS": "2",
    "TRAINING_IMGSZ": "96",
    "TRAINING_BATCH_SIZE": "16",
    "TRAINING_WORKERS": "0",
    "TRAINING_PLOTS": "true",
    "TRAINING_OPTIMIZER": "AdamW",
    "TRAINING_LR0": "0.002",
    "EXPORT_ONNX_IMGSZ": "128",
    "EXPORT_PARITY_IMAGES": "4",
    # Two-epoch models score about 0: tests that need a champion lower the quality floor to 0;
    # the floor itself is tested in test_champion and test_pipeline.
    "RETRAIN_MIN_TEST_MAP50_95": "0",
}


@pytest.fixture(scope="session")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Ultralytics runtime dir per session: Ultralytics reads its flags once, at import."""
    return tmp_path_factory.mktemp("runtime")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, runtime_dir: Path) -> None:
    """No configuration leaks in from the machine, and no stray .env/config.yaml is read."""
    clear_config_env(monkeypatch)
    monkeypatch.setenv("AZAION_RUNTIME_DIR", str(runtime_dir))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "azaion"
    monkeypatch.setenv("AZAION_ROOT_DIR", str(path))
    return path


@pytest.fixture
def settings(root: Path) -> Settings:
    return load_settings()


@pytest.fixture
def tree(settings: Settings) -> DataTree:
    return DataTree.from_settings(settings).ensure()


class NetworkAttempt(AssertionError):
    pass


def _loopback(host: object) -> bool:
    """An IP literal of this machine (no name lookup: a name is for DNS, which is guarded)."""
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


def guard_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail any outbound connection or DNS lookup, and record each attempt.

    Unix sockets and loopback addresses stay allowed (they never leave the machine; the tests'
    own servers listen on 127.0.0.1). The failure is an AssertionError,
    not an OSError, so library code that tolerates being offline cannot swallow it quietly; the
    returned list lets a test assert that nothing was even tried.
    """
    attempts: list[str] = []
    real_connect = socket.socket.connect

    real_getaddrinfo = socket.getaddrinfo

    def guarded_connect(self: socket.socket, address, *args, **kwargs):
        if self.family == socket.AF_UNIX or _loopback(address[0]):
            return real_connect(self, address, *args, **kwargs)
        attempts.append(f"connect {address!r}")
        raise NetworkAttempt(f"outbound connection attempted: {address!r}")

    def guarded_connect_ex(self: socket.socket, address, *args, **kwargs):
        attempts.append(f"connect_ex {address!r}")
        raise NetworkAttempt(f"outbound connection attempted: {address!r}")

    def guarded_getaddrinfo(host, *args, **kwargs):
        if _loopback(host):
            return real_getaddrinfo(host, *args, **kwargs)
        attempts.append(f"getaddrinfo {host!r}")
        raise NetworkAttempt(f"DNS lookup attempted: {host!r}")

    def guarded_gethostbyname(host, *args, **kwargs):
        attempts.append(f"gethostbyname {host!r}")
        raise NetworkAttempt(f"DNS lookup attempted: {host!r}")

    real_sendto = socket.socket.sendto

    def guarded_sendto(self: socket.socket, *args, **kwargs):
        if self.family == socket.AF_UNIX:
            return real_sendto(self, *args, **kwargs)
        attempts.append(f"sendto {args[-1]!r}")
        raise NetworkAttempt(f"outbound datagram attempted: {args[-1]!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", guarded_sendto)
    monkeypatch.setattr(socket, "gethostbyname", guarded_gethostbyname)
    monkeypatch.setattr(socket, "gethostbyname_ex", guarded_gethostbyname)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return attempts


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    yield guard_network(monkeypatch)


def clear_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(CONFIG_PREFIXES):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def broker() -> Iterator[StreamTarget]:
    """A real RabbitMQ with the stream plugin: RABBITMQ_* from the environment when
    RABBITMQ_HOST is set, else a throwaway broker started for this session. Never skipped: a
    broker that cannot start fails the tests that need it.
    """
    if os.environ.get("RABBITMQ_HOST"):
        yield StreamTarget(
            host=os.environ["RABBITMQ_HOST"],
            port=int(os.environ.get("RABBITMQ_PORT", "5552")),
            user=os.environ.get("RABBITMQ_USER", "azaion_receiver"),
            password=os.environ["RABBITMQ_PASSWORD"],
            stream="unused",
        )
        return
    with LocalBroker() as local:
        yield local.target("unused")


@pytest.fixture
def stream(broker: StreamTarget) -> StreamTarget:
    """A fresh stream of its own for one test."""
    return dataclasses.replace(broker, stream=f"test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def stream_env(stream: StreamTarget, root: Path, monkeypatch: pytest.MonkeyPatch) -> StreamTarget:
    """Settings (through the environment) pointing at a fresh stream and a data tree in tmp."""
    for key, value in stream.as_env().items():
        monkeypatch.setenv(key, value)
    return stream


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    """A real, SQLite-backed Dagster instance of its own."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.from_config(str(home)) as inst:
        yield inst


@pytest.fixture(scope="session")
def _truncated(broker: StreamTarget) -> tuple[StreamTarget, int, int]:
    """A stream with small segments and a byte limit, filled until retention removed its first
    segments: (target, head, tail). Made once a session (the retention wait takes seconds);
    the tests that use it only read it."""
    import asyncio

    from azaion_assets.dev.messages import Author, synthetic
    from azaion_assets.lib.stream.client import probe_head, probe_tail, publish

    target = dataclasses.replace(broker, stream=f"truncated-{uuid.uuid4().hex[:12]}")

    async def create() -> None:
        async with raw_producer(target) as producer:
            await producer.create_stream(
                target.stream,
                arguments={"max-length-bytes": 100_000, "stream-max-segment-size-bytes": 50_000},
            )

    asyncio.run(create())
    for seed in range(8):  # segments roll over and retention drops the oldest
        batch = list(synthetic(5, Author(), seed=seed, width=160, height=128))
        asyncio.run(publish(target, batch))
    # The broker applies retention in the background: wait until the head has moved and settled.
    deadline = time.monotonic() + 20
    previous, head = None, asyncio.run(probe_head(target))
    while (not head or head != previous) and time.monotonic() < deadline:
        time.sleep(0.5)
        previous, head = head, asyncio.run(probe_head(target))
    tail = asyncio.run(probe_tail(target, timeout=10))
    assert head is not None and head > 0 and tail is not None, "retention did not truncate"
    return target, head, tail


@pytest.fixture
def truncated_stream(
    _truncated: tuple[StreamTarget, int, int], root: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, int]:
    """Settings (through the environment) pointing at the session's truncated stream and a data
    tree in tmp; returns (head, tail)."""
    target, head, tail = _truncated
    for key, value in target.as_env().items():
        monkeypatch.setenv(key, value)
    return head, tail


def raw_producer(target: StreamTarget):
    """A plain rstream Producer on ``target``, for streams the project's client would not make
    (retention settings, frames that are not AMQP 1.0)."""
    from rstream import Producer

    return Producer(target.host, port=target.port, username=target.user, password=target.password)


def requested_keys(result) -> list[str]:
    """The partitions a stream-sensor result's run requests cover, in order: a range run covers
    the partitions the same result adds from its first to its last."""
    from azaion_assets.defs.annotations.ingest_job import run_partitions

    added = [k for r in result.dynamic_partitions_requests or [] for k in r.partition_keys]
    keys: list[str] = []
    for request in result.run_requests or []:
        first, last = run_partitions(dict(request.tags)) or (request.partition_key,) * 2
        keys += [k for k in added if first <= k <= last] or [request.partition_key]
    return keys


def assert_tiles(keys: list[str], first: int, last: int) -> list[OffsetRange]:
    """The partition keys cover ``[first, last]`` in order, with no gap and no overlap."""
    ranges = [OffsetRange.parse(k) for k in keys]
    assert ranges[0].first == first and ranges[-1].last == last, keys
    assert all(a.last + 1 == b.first for a, b in itertools.pairwise(ranges)), keys
    return ranges


# --- release: a real S3-compatible server and the local Azaion API, over HTTP on loopback ---
API_EMAIL = "trainer@azaion.local"
API_PASSWORD = "api-Pa55word-never-logged"
MODEL_KEY = "model-key-never-logged-0123456789"


@pytest.fixture(scope="session")
def local_cdn() -> Iterator[LocalCdn]:
    """moto's standalone S3 server (real HTTP, real S3 wire protocol, signatures and per-role
    rights enforced), for this session."""
    with LocalCdn({**ROLES, "put_only": ["s3:PutObject"]}) as cdn:
        yield cdn


@dataclasses.dataclass
class ReleaseServices:
    api: LocalAzaionApi
    cdn: CdnConfig
    local_cdn: LocalCdn

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never show: the API password, the model key, every CDN secret key."""
        return (API_PASSWORD, MODEL_KEY, *self.local_cdn.secrets)

    def only(self, role: str) -> None:
        """Serve a cdn.yaml whose other pair is revoked (a key the CDN does not know), to show
        that what follows needs only ``role``'s pair."""
        text = yaml.safe_load(self.local_cdn.cdn_yaml(self.cdn.bucket))
        other = "write" if role == "read" else "read"
        text[other] = {"access_key": "REVOKED", "secret_key": "revoked-secret-key"}
        self.api.put("config", CDN_CONFIG, yaml.safe_dump(text).encode())

    def bucket_objects(self) -> dict[str, bytes]:
        s3 = self.local_cdn.client("admin")
        listed = s3.list_objects_v2(Bucket=self.cdn.bucket).get("Contents", [])
        return {o["Key"]: cdn_get(s3, self.cdn.bucket, o["Key"]) for o in listed}


@pytest.fixture
def release_services(local_cdn: LocalCdn) -> Iterator[ReleaseServices]:
    """The local Azaion API holding an account and its cdn.yaml, and an empty bucket of its
    own on the S3 server that cdn.yaml names."""
    bucket = f"azaion-{uuid.uuid4().hex[:12]}"
    with LocalAzaionApi(API_EMAIL, API_PASSWORD) as api:
        config = local_cdn.provision(api, bucket, "config")
        yield ReleaseServices(api, config, local_cdn)


@pytest.fixture
def release_env(
    release_services: ReleaseServices, monkeypatch: pytest.MonkeyPatch
) -> ReleaseServices:
    """Release settings, through the environment, pointing at ``release_services``."""
    env = {
        "AZAION_API_URL": release_services.api.url,
        "AZAION_API_EMAIL": API_EMAIL,
        "AZAION_API_PASSWORD": API_PASSWORD,
        "MODEL_ENCRYPTION_KEY": MODEL_KEY,
        "AZAION_API_BACKOFF_SECONDS": "0.05",
        "AZAION_API_TIMEOUT_SECONDS": "5",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return release_services
