"""A release's way back: the parts joined, decrypted and verified, then written.

What an edge device does with a published release (``fetch``), and the same from the parts
kept beside the model (``reassemble_local``). Every file is checked against the manifest in
memory before any is written, so a failure leaves the target as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from azaion_assets.lib.fsio.atomic import atomic_write_bytes, atomic_write_text
from azaion_assets.lib.release import cdn
from azaion_assets.lib.release.azaion_api import AzaionApi
from azaion_assets.lib.release.crypto import DecryptionError, Scheme, decrypt
from azaion_assets.lib.release.release_manifest import (
    CARD_OF,
    MANIFEST,
    POINTER,
    ReleaseError,
    parse_manifest,
    read_manifest,
    sha256,
)


def reassemble(entry: dict[str, Any], small: bytes, big: bytes, key: str, scheme: Scheme) -> bytes:
    """Join and decrypt one file's parts, checking every checksum of the manifest."""
    name = entry["name"]
    for part, data in (("small", small), ("big", big)):
        if sha256(data) != entry[part]["sha256"]:
            raise ReleaseError(f"{name}: the {part} part does not match the manifest's sha256")
    try:
        plain = decrypt(small + big, key, scheme)
    except DecryptionError as exc:
        raise ReleaseError(f"{name}: {exc}") from None
    if sha256(plain) != entry["plaintext_sha256"]:
        raise ReleaseError(f"{name}: decrypted, but not to the released model (sha256 differs)")
    return plain


def _rebuild(manifest: dict[str, Any], parts: Any, key: str, target: Path) -> dict[str, Any]:
    """Every file verified in memory first, then written: a failure leaves ``target`` as it
    was (each write is atomic, too)."""
    plain = {}
    for entry in manifest["files"]:
        small, big = parts(entry)
        plain[entry["name"]] = reassemble(entry, small, big, key, manifest["scheme"])
    card = manifest.get("card")
    if isinstance(card, dict) and card.get("sha256") != sha256(plain.get(CARD_OF, b"")):
        raise ReleaseError(f"release manifest: the model card is not {CARD_OF}'s")
    target.mkdir(parents=True, exist_ok=True)
    for name, data in plain.items():
        atomic_write_bytes(target / name, data)
    if isinstance(card, dict):  # the deployer's contract travels with the file it describes
        atomic_write_text(target / f"{CARD_OF}.json", json.dumps(card, indent=2))
    return manifest


def fetch(
    api: AzaionApi, hardware: str, key: str, target: Path, folder: str, cdn_config_folder: str
) -> dict[str, Any]:
    """What an edge device does: ``cdn.yaml`` for the read key pair, then the pointer, both
    parts of each file, reassembled, decrypted and verified, each file written atomically under
    ``target``. ``folder``: the API folder of the release. Returns the manifest."""
    read_cdn = cdn.client(cdn.fetch_config(api, cdn_config_folder, hardware), "read")
    manifest = parse_manifest(api.fetch(folder, POINTER, hardware))
    bucket = str(manifest.get("bucket", ""))

    def parts(entry: dict[str, Any]) -> tuple[bytes, bytes]:
        small = api.fetch(folder, entry["small"]["name"], hardware)
        return small, cdn.get_bytes(read_cdn, bucket, entry["big"]["key"])

    return _rebuild(manifest, parts, key, target)


def reassemble_local(out: Path, key: str, target: Path) -> dict[str, Any]:
    """The same from the parts kept beside the model (offline verification)."""
    manifest = read_manifest(out)
    if manifest is None:
        raise ReleaseError(f"{out} holds no release manifest ({MANIFEST}) that can be read")

    def parts(entry: dict[str, Any]) -> tuple[bytes, bytes]:
        name = entry["name"]
        return (out / f"{name}.small").read_bytes(), (out / f"{name}.big").read_bytes()

    return _rebuild(manifest, parts, key, target)
