"""A release end to end over real HTTP (local Azaion API, moto's S3 server): built, shipped,
fetched back as an edge device would, byte-identical; re-runs duplicate nothing; tampering and
key changes are caught; only the champion is releasable."""

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from azaion_assets.lib.champion.files import publish_pair
from azaion_assets.lib.release import cdn
from azaion_assets.lib.release.azaion_api import AzaionApi
from azaion_assets.lib.release.bundle import (
    NotReleasable,
    Split,
    champion_pair,
    prepare,
    prune,
    restore_from_live,
    upload_parts,
    upload_pointer,
)
from azaion_assets.lib.release.cdn import KeyPair
from azaion_assets.lib.release.crypto import Scheme
from azaion_assets.lib.release.reassembly import fetch, reassemble_local
from azaion_assets.lib.release.release_manifest import (
    MANIFEST,
    POINTER,
    ReleaseError,
    parse_manifest,
)
from azaion_assets_tests.conftest import API_EMAIL, API_PASSWORD, MODEL_KEY

P = "2026-11-20"
HW = "CPU: test. GPU: none. Memory: 1 GiB. DriveSerial: T1."
LIMITS = Split(3072, 0.2)


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Path]:
    """Stand-ins for the pair: a 'big' weights file and an ONNX file under 15 KB (so its
    small part is 20 %, not 3 KB)."""
    pt, onnx = tmp_path / "best.pt", tmp_path / "model.onnx"
    pt.write_bytes(os.urandom(250_000))
    onnx.write_bytes(os.urandom(9_000))
    return {"azaion.pt": pt, "azaion.onnx": onnx}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(models, out, scheme: Scheme = "aes-256-gcm", key=MODEL_KEY):
    return prepare(models, out, P, key, scheme, LIMITS, "models")


@pytest.mark.parametrize("scheme", ["aes-256-cbc", "aes-256-gcm"])
def test_parts_sizes_and_checksums(models, tmp_path, scheme):
    manifest = build(models, tmp_path / "out", scheme)
    pt, onnx = manifest["files"]
    assert pt["small"]["bytes"] == 3072  # min(3 KB, 20 %)
    assert onnx["small"]["bytes"] == int(0.2 * (onnx["small"]["bytes"] + onnx["big"]["bytes"]))
    out = tmp_path / "out"
    part_shas = [sha256_file(out / f"azaion.pt.{part}") for part in ("small", "big")]
    content_id = hashlib.sha256("".join(part_shas).encode()).hexdigest()[:16]
    assert pt["small"]["name"] == f"azaion-{P}.pt.{content_id}.small"
    assert pt["big"]["key"] == f"models/azaion-{P}/azaion.pt.{content_id}.big"
    back = reassemble_local(tmp_path / "out", MODEL_KEY, tmp_path / "back")
    assert back["scheme"] == scheme
    for name, source in models.items():
        assert (tmp_path / "back" / name).read_bytes() == source.read_bytes()


def test_a_rebuild_reuses_the_same_parts_until_something_changes(models, tmp_path):
    out = tmp_path / "out"
    first = build(models, out)
    parts = {p.name: p.read_bytes() for p in out.iterdir()}
    again = build(models, out)
    assert again["reused"] == ["azaion.pt", "azaion.onnx"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == parts
    assert again["files"] == first["files"]

    rotated = build(models, out, key=MODEL_KEY + "-rotated")  # a new key: encrypted anew
    assert rotated["reused"] == []
    assert (out / "azaion.pt.big").read_bytes() != parts["azaion.pt.big"]
    with pytest.raises(ReleaseError, match="authentication failed"):
        reassemble_local(out, MODEL_KEY, tmp_path / "back")

    models["azaion.onnx"].write_bytes(os.urandom(9_000))  # a new model: that file anew
    changed = build(models, out, key=MODEL_KEY + "-rotated")
    assert changed["reused"] == ["azaion.pt"]


def test_tampered_gcm_parts_are_rejected_even_with_a_doctored_manifest(models, tmp_path):
    out = tmp_path / "out"
    build(models, out, "aes-256-gcm")
    big = bytearray((out / "azaion.onnx.big").read_bytes())
    big[100] ^= 0xFF
    (out / "azaion.onnx.big").write_bytes(bytes(big))
    with pytest.raises(ReleaseError, match="big part does not match the manifest"):
        reassemble_local(out, MODEL_KEY, tmp_path / "back")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"][1]["big"]["sha256"] = hashlib.sha256(bytes(big)).hexdigest()
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ReleaseError, match=r"azaion\.onnx: aes-256-gcm: authentication failed"):
        reassemble_local(out, MODEL_KEY, tmp_path / "back")
    assert not (tmp_path / "back" / "azaion.onnx").exists()


def refusal(tree, partition: str) -> str:
    with pytest.raises(NotReleasable) as caught, champion_pair(tree, partition):
        pass
    return str(caught.value)


def test_only_the_champion_is_releasable(tree, models):
    assert "azaion.pt holds nothing" in refusal(tree, P)
    files = [(models["azaion.onnx"], tree.champion_onnx), (models["azaion.pt"], tree.champion)]
    publish_pair(files, P)
    with champion_pair(tree, P) as sources:
        assert sources == {"azaion.pt": tree.champion, "azaion.onnx": tree.champion_onnx}
    message = refusal(tree, "2026-11-21")
    assert "2026-11-21 is not the champion" in message and f"holds {P}" in message
    tree.champion_onnx.write_bytes(b"replaced behind the records' back")
    assert "azaion.onnx holds unknown" in refusal(tree, P)


class Shipper:
    """Releases as the asset does: parts, then the pointer, then pruning."""

    def __init__(self, services, models, out: Path):
        self.services, self.models, self.out = services, models, out
        self.api = AzaionApi(services.api.url, API_EMAIL, API_PASSWORD, backoff=0.01)
        self.config = cdn.fetch_config(self.api, "config", HW)
        self.writer = cdn.client(self.config, "write")

    def parts(self, key: str = MODEL_KEY):
        manifest = build(self.models, self.out, key=key)
        bucket = self.config.bucket
        return manifest, upload_parts(manifest, self.out, self.api, self.writer, bucket, "models")

    def pointer(self, manifest) -> list[str]:
        upload_pointer(manifest, self.api, self.config.bucket, "models")
        return prune(self.writer, self.config.bucket, "models", manifest)

    def fetch(self, target: Path, key: str = MODEL_KEY):
        return fetch(self.api, HW, key, target, "models", "config")


def test_shipped_fetched_back_byte_identical_and_rerun_without_duplicates(
    models, tmp_path, release_services
):
    services = release_services
    ship = Shipper(services, models, tmp_path / "out")
    manifest, uploaded = ship.parts()
    assert POINTER not in services.api.folders["models"]  # not yet switched
    assert ship.pointer(manifest) == []
    keys = sorted(entry["big"]["key"] for entry in manifest["files"])
    assert sorted(uploaded.sent) == keys and uploaded.present == []
    assert sorted(services.bucket_objects()) == keys
    smalls = [("models", entry["small"]["name"]) for entry in manifest["files"]]
    assert services.api.uploads == [*smalls, ("models", POINTER)]  # the pointer went last

    # As an edge device: the pointer, the small parts (API) and big parts (CDN, read keys).
    fetched = ship.fetch(tmp_path / "edge")
    for name, source in models.items():
        assert (tmp_path / "edge" / name).read_bytes() == source.read_bytes()
    assert fetched["bucket"] == ship.config.bucket and fetched["partition"] == P

    objects, folder = services.bucket_objects(), dict(services.api.folders["models"])
    services.api.expire_tokens()  # a re-run, with a token that expired meanwhile
    again, uploaded = ship.parts()
    assert ship.pointer(again) == []
    assert uploaded.sent == [] and sorted(uploaded.present) == keys
    assert services.bucket_objects() == objects
    assert services.api.folders["models"] == folder
    assert ship.api.logins == 2


def test_a_re_encryption_never_touches_the_live_release_until_the_switch(
    models, tmp_path, release_services
):
    services = release_services
    ship = Shipper(services, models, tmp_path / "out")
    first, _ = ship.parts()
    ship.pointer(first)
    rotated = MODEL_KEY + "-rotated"
    second, uploaded = ship.parts(key=rotated)  # new parts beside the live ones
    assert len(uploaded.sent) == 2 and len(services.bucket_objects()) == 4
    ship.fetch(tmp_path / "still-live")  # the live release still reassembles, old key
    assert (tmp_path / "still-live" / "azaion.pt").read_bytes() == models["azaion.pt"].read_bytes()
    pruned = ship.pointer(second)
    assert sorted(pruned) == sorted(entry["big"]["key"] for entry in first["files"])
    assert sorted(services.bucket_objects()) == sorted(e["big"]["key"] for e in second["files"])
    ship.fetch(tmp_path / "new", key=rotated)
    assert (tmp_path / "new" / "azaion.onnx").read_bytes() == models["azaion.onnx"].read_bytes()


def test_a_tampered_cdn_object_is_refused_and_nothing_is_written(
    models, tmp_path, release_services
):
    ship = Shipper(release_services, models, tmp_path / "out")
    manifest, _ = ship.parts()
    ship.pointer(manifest)
    key = manifest["files"][0]["big"]["key"]
    body = bytearray(release_services.bucket_objects()[key])
    body[1000] ^= 0x01
    ship.writer.put_object(Bucket=ship.config.bucket, Key=key, Body=bytes(body))
    with pytest.raises(ReleaseError, match="big part does not match"):
        ship.fetch(tmp_path / "edge")
    assert not (tmp_path / "edge").exists()


def test_kept_parts_are_restored_only_from_this_partitions_live_release(
    models, tmp_path, release_services
):
    ship = Shipper(release_services, models, tmp_path / "out")
    bucket = ship.config.bucket

    def restore(out: Path, partition: str = P) -> bool:
        return restore_from_live(out, partition, ship.api, HW, ship.writer, bucket, "models")

    assert restore(tmp_path / "none") is False  # nothing released yet (the API answers 404)
    manifest, _ = ship.parts()
    ship.pointer(manifest)
    assert restore(tmp_path / "out") is False  # the kept parts are there
    assert restore(tmp_path / "other", "2026-11-21") is False  # live is another partition
    assert not (tmp_path / "other").exists()
    assert restore(tmp_path / "back") is True
    for name in ("azaion.pt", "azaion.onnx"):
        for part in ("small", "big"):
            kept = (tmp_path / "out" / f"{name}.{part}").read_bytes()
            assert (tmp_path / "back" / f"{name}.{part}").read_bytes() == kept
    rebuilt = build(models, tmp_path / "back")
    assert rebuilt["reused"] == ["azaion.pt", "azaion.onnx"]
    assert rebuilt["files"] == manifest["files"]


def test_the_cdn_grants_each_pair_only_its_role(release_services, tmp_path):
    """What the tests that follow rely on: the read pair cannot write, the write pair can, and
    a forged secret is refused, as on a real S3."""
    config = release_services.cdn
    reader, writer = cdn.client(config, "read"), cdn.client(config, "write")
    part = tmp_path / "part"
    part.write_bytes(b"bytes")
    with pytest.raises(cdn.CdnError, match="AccessDenied") as caught:
        cdn.put_unless_present(reader, config.bucket, "k", part, "a" * 64)
    assert caught.value.permanent
    assert cdn.put_unless_present(writer, config.bucket, "k", part, "a" * 64)
    assert cdn.get_bytes(reader, config.bucket, "k") == b"bytes"
    forged = KeyPair(access_key=config.read.access_key, secret_key=SecretStr("forged"))
    with pytest.raises(cdn.CdnError, match="SignatureDoesNotMatch"):
        cdn.get_bytes(
            cdn.client(config.model_copy(update={"read": forged}), "read"), config.bucket, "k"
        )


def test_a_release_needs_only_the_write_pair_and_an_edge_device_only_the_read_pair(
    models, tmp_path, release_services
):
    release_services.only("write")
    ship = Shipper(release_services, models, tmp_path / "out")
    manifest, uploaded = ship.parts()
    ship.pointer(manifest)
    assert len(uploaded.sent) == 2
    release_services.only("read")
    ship.fetch(tmp_path / "edge")
    for name, source in models.items():
        assert (tmp_path / "edge" / name).read_bytes() == source.read_bytes()


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda m: m["files"][0].update(name="../../etc/cron.d/x"), "expected"),
        (lambda m: m.update(scheme="rot13"), "scheme 'rot13' unknown"),
        (lambda m: m["files"][1]["big"].pop("key"), "expected shape"),
        (lambda m: m.update(format=2), "format 2 unknown"),
    ],
)
def test_a_manifest_is_checked_before_anything_in_it_is_used(models, tmp_path, mutate, problem):
    manifest = build(models, tmp_path / "out")
    manifest.pop("reused")
    assert parse_manifest(json.dumps(manifest).encode()) == manifest
    mutate(manifest)
    with pytest.raises(ReleaseError, match=re.escape(problem)):
        parse_manifest(json.dumps(manifest).encode())
    with pytest.raises(ReleaseError, match="not valid JSON"):
        parse_manifest(b"\xc1 not json")


def test_the_card_rides_in_the_manifest_and_must_describe_the_onnx(models, tmp_path):
    card = {"format": "azaion-model-card", "sha256": sha256_file(models["azaion.onnx"])}
    out = tmp_path / "out"
    assert prepare(models, out, P, MODEL_KEY, "aes-256-gcm", LIMITS, "models", card=card)["card"]
    reassemble_local(out, MODEL_KEY, tmp_path / "edge")
    assert json.loads((tmp_path / "edge" / "azaion.onnx.json").read_text()) == card

    models["azaion.onnx"].write_bytes(os.urandom(9_000))  # the card now describes other bytes
    prepare(models, out, P, MODEL_KEY, "aes-256-gcm", LIMITS, "models", card=card)
    with pytest.raises(ReleaseError, match=r"model card is not azaion\.onnx's"):
        reassemble_local(out, MODEL_KEY, tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()  # nothing written
