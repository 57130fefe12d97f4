"""An encrypted release of the champion pair, and its way back (docs/azaion-api.md).

A release of partition P holds, for each file (``azaion.pt``, ``azaion.onnx``):
- the small part, the head of its ciphertext, as resource ``azaion-P.<ext>.<id>.small`` of
  the API folder;
- the big part, the rest, as object ``<prefix>/azaion-P/<file>.<id>.big`` of the CDN bucket;
- and the release manifest: scheme, names, sizes and sha256 of the plaintext and of each part.
  It is uploaded last, as ``azaion.release.json``, the pointer edge devices read.

``<id>`` is derived from the parts' sha256, so the names are content-addressed: a
re-encryption (a rotated key, another scheme) writes new objects beside the ones the current
pointer names, never over them, and the pointer switches in one write. An edge device never
sees a release whose parts are not all in place. Big parts that no pointer names any more are
pruned from the CDN after the switch.

The encrypted parts are kept next to the model (``models/azaion-P/release/``) and reused while
the plaintext, the scheme, the split and the key are unchanged. A re-run therefore sends the
same bytes under the same names: the CDN skips objects it already holds and the API replaces a
resource by name, so nothing is duplicated.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.fsio.atomic import atomic_write_bytes, atomic_write_text
from azaion_assets.lib.fsio.locks import file_lock
from azaion_assets.lib.release import cdn
from azaion_assets.lib.release.azaion_api import ApiError, AzaionApi
from azaion_assets.lib.release.champion_files import held_partition, publish_lock, read_record
from azaion_assets.lib.release.crypto import (
    SCHEMES,
    DecryptionError,
    Scheme,
    decrypt,
    encrypt,
    split,
)

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "release.json"
POINTER = "azaion.release.json"
FILES = ("azaion.pt", "azaion.onnx")
CARD_OF = "azaion.onnx"  # the file the model card describes
ID_CHARS = 16


class ReleaseError(RuntimeError):
    """A release cannot be built, published or reassembled (no key material inside)."""


class NotReleasable(ReleaseError):
    """The partition is not the champion: only the model in production is released."""


def release_lock(tree: DataTree, on_wait: Callable[[], None] | None = None):
    """One release at a time, so pointers switch in the order the releases run."""
    return file_lock(tree.models / ".release.lock", on_wait)


@contextmanager
def champion_pair(
    tree: DataTree, partition: str, manifest: dict[str, Any] | None = None
) -> Iterator[dict[str, Path]]:
    """The champion's files, held still (no promotion meanwhile) for the block.

    Raises ``NotReleasable`` unless both files are ``partition``'s, with believable records,
    and, given the ``manifest`` of a release, unless they are the very bytes it encrypted (the
    same partition can be promoted again by hand with other bytes, e.g. a re-exported ONNX)."""
    files = {"azaion.pt": tree.champion, "azaion.onnx": tree.champion_onnx}
    with publish_lock(tree.models):
        held = {name: held_partition(path) for name, path in files.items()}
        if set(held.values()) != {partition}:
            found = ", ".join(f"{name} holds {value or 'nothing'}" for name, value in held.items())
            raise NotReleasable(
                f"{partition} is not the champion ({found}); a release ships the model in "
                "production, so promote it first (promote_model job)"
            )
        for entry in manifest["files"] if manifest else []:
            record = read_record(files[entry["name"]]) or {}
            if record.get("sha256") != entry["plaintext_sha256"]:
                raise NotReleasable(
                    f"{entry['name']} of {partition} was published again with other bytes "
                    "while this release ran; the next release ships the new ones"
                )
        yield files


@dataclass(frozen=True)
class Split:
    max_small_bytes: int
    small_fraction: float


def sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def partition_prefix(prefix: str, partition: str) -> str:
    return f"{prefix.strip('/')}/azaion-{partition}/".lstrip("/")


def _entry(
    name: str,
    plain: tuple[str, int],
    parts: tuple[bytes | memoryview, bytes | memoryview],
    partition: str,
    prefix: str,
) -> dict[str, Any]:
    """A file's manifest entry; ``plain``: its sha256 and size. The names carry a content id,
    the start of the sha256 of both parts' sha256 (one pass over the bytes, not two)."""
    small, big = ({"bytes": len(part), "sha256": sha256(part)} for part in parts)
    content_id = sha256((small["sha256"] + big["sha256"]).encode())[:ID_CHARS]
    suffix = Path(name).suffix
    return {
        "name": name,
        "plaintext_sha256": plain[0],
        "plaintext_bytes": plain[1],
        "small": {"name": f"azaion-{partition}{suffix}.{content_id}.small", **small},
        "big": {"key": f"{partition_prefix(prefix, partition)}{name}.{content_id}.big", **big},
    }


def _reuse(
    old: dict[str, Any], out: Path, plain: bytes, key: str, scheme: Scheme, where: tuple[str, str]
) -> dict[str, Any] | None:
    """The kept entry if its parts decrypt, under today's key and scheme, to exactly today's
    plaintext and would be named as today (``where``: partition, prefix); else None."""
    small_path, big_path = out / f"{old['name']}.small", out / f"{old['name']}.big"
    if not (small_path.is_file() and big_path.is_file()):
        return None
    small, big = small_path.read_bytes(), big_path.read_bytes()
    plain_id = (old["plaintext_sha256"], len(plain))  # the caller compared the sha256
    if _entry(old["name"], plain_id, (small, big), *where) != old:
        return None
    try:
        return old if decrypt(small + big, key, scheme) == plain else None
    except DecryptionError:
        return None  # the key was rotated


def prepare(
    sources: dict[str, Path],
    out: Path,
    partition: str,
    key: str,
    scheme: Scheme,
    limits: Split,
    prefix: str,
    card: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Encrypt and split each source (``{"azaion.pt": path, ...}``) into ``out``, reusing the
    parts of an earlier run that still match; returns the manifest (also written to ``out``),
    which carries ``card``, the ONNX's model card, in the clear."""
    out.mkdir(parents=True, exist_ok=True)
    previous = read_manifest(out)
    same_recipe = previous is not None and (previous.get("scheme"), previous.get("split")) == (
        scheme,
        vars(limits),
    )
    kept = {f["name"]: f for f in previous["files"]} if previous and same_recipe else {}
    entries, reused = [], []
    for name, path in sources.items():
        plain = path.read_bytes()
        plain_id = (sha256(plain), len(plain))
        old = kept.get(name)
        if old is not None and old.get("plaintext_sha256") == plain_id[0]:
            entry = _reuse(old, out, plain, key, scheme, (partition, prefix))
            if entry is not None:
                reused.append(name)
                entries.append(entry)
                continue
        ciphertext = encrypt(plain, key, scheme)
        small, big = split(ciphertext, limits.max_small_bytes, limits.small_fraction)
        atomic_write_bytes(out / f"{name}.small", small)
        atomic_write_bytes(out / f"{name}.big", big)
        entries.append(_entry(name, plain_id, (small, big), partition, prefix))
    manifest = {
        "format": FORMAT,
        "partition": partition,
        "scheme": scheme,
        "split": vars(limits),
        "files": entries,
        **({"card": card} if card else {}),
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2))
    return {**manifest, "reused": reused}


def read_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        return parse_manifest(path.read_bytes())
    except ReleaseError:
        return None  # a hand-edited or foreign file: rebuild rather than trust it


_REQUIRED = (
    ("plaintext_sha256",),
    ("small", "name"),
    ("small", "sha256"),
    ("big", "key"),
    ("big", "sha256"),
)


def parse_manifest(data: bytes) -> dict[str, Any]:
    """A manifest, checked before anything in it is used (names become paths and keys)."""
    try:
        manifest = json.loads(data)
        if manifest.get("format") != FORMAT:
            raise ReleaseError(f"release manifest: format {manifest.get('format')!r} unknown")
        if manifest.get("scheme") not in SCHEMES:
            raise ReleaseError(f"release manifest: scheme {manifest.get('scheme')!r} unknown")
        names = [entry["name"] for entry in manifest["files"]]
        for entry in manifest["files"]:
            for field in _REQUIRED:
                value = entry
                for step in field:
                    value = value[step]
                if not isinstance(value, str):
                    raise TypeError(field)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ReleaseError("release manifest: not valid JSON of the expected shape") from None
    if sorted(names) != sorted(FILES):
        raise ReleaseError(f"release manifest: files {names}, expected {list(FILES)}")
    return manifest


def restore_from_live(
    out: Path, partition: str, api: AzaionApi, hardware: str, s3: Any, bucket: str, folder: str
) -> bool:
    """Take the kept parts back from the live release when they are gone from ``out`` (a new
    machine, a restored volume, a cleanup) and the live release is ``partition``'s: ``prepare``
    then reuses them, verified, and a re-run sends nothing new. Without this, a fresh
    encryption (a new random IV) would give new names and leave a second copy of each small
    part on the API, which has no delete. Returns whether parts were restored; anything
    missing or not matching means encrypting anew, as for a first release."""
    if read_manifest(out) is not None:
        return False
    try:
        live = parse_manifest(api.fetch(folder, POINTER, hardware))
    except ApiError as exc:
        if exc.status == 404:
            return False  # nothing released yet
        raise
    except ReleaseError:
        return False
    if live.get("partition") != partition:
        return False
    parts = {}
    for entry in live["files"]:
        try:
            small = api.fetch(folder, entry["small"]["name"], hardware)
            big = cdn.get_bytes(s3, bucket, entry["big"]["key"])
        except (ApiError, cdn.CdnError) as exc:
            log.warning("not restoring the live parts of %s: %s", partition, exc)
            return False
        if (sha256(small), sha256(big)) != (entry["small"]["sha256"], entry["big"]["sha256"]):
            return False
        parts[entry["name"]] = (small, big)
    out.mkdir(parents=True, exist_ok=True)
    for name, (small, big) in parts.items():
        atomic_write_bytes(out / f"{name}.small", small)
        atomic_write_bytes(out / f"{name}.big", big)
    kept = {k: live[k] for k in ("format", "partition", "scheme", "split", "files") if k in live}
    atomic_write_text(out / MANIFEST, json.dumps(kept, indent=2))
    return True


@dataclass(frozen=True)
class Uploaded:
    sent: list[str]  # CDN keys sent this time
    present: list[str]  # CDN keys that already held the same bytes


def upload_parts(
    manifest: dict[str, Any], out: Path, api: AzaionApi, s3: Any, bucket: str, folder: str
) -> Uploaded:
    """Big parts to the CDN, then small parts to the API; the current pointer is untouched."""
    sent, present = [], []
    for entry in manifest["files"]:
        big = entry["big"]
        path = out / f"{entry['name']}.big"
        shipped = cdn.put_unless_present(s3, bucket, big["key"], path, big["sha256"])
        (sent if shipped else present).append(big["key"])
    for entry in manifest["files"]:
        api.upload(folder, entry["small"]["name"], (out / f"{entry['name']}.small").read_bytes())
    return Uploaded(sent, present)


def upload_pointer(
    manifest: dict[str, Any], api: AzaionApi, bucket: str, folder: str
) -> dict[str, Any]:
    """Switch the edge to this release: the manifest, as published, is the pointer."""
    public = {**{k: v for k, v in manifest.items() if k != "reused"}, "bucket": bucket}
    public["api_folder"] = folder
    api.upload(folder, POINTER, json.dumps(public, indent=2).encode())
    return public


def prune(s3: Any, bucket: str, prefix: str, manifest: dict[str, Any]) -> list[str]:
    """Delete the partition's big parts that the pointer no longer names (an earlier
    encryption's). Best effort: a failure is logged, the release stands."""
    keep = {entry["big"]["key"] for entry in manifest["files"]}
    where = partition_prefix(prefix, manifest["partition"])
    try:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=where).get("Contents", [])
        stale = [obj["Key"] for obj in listed if obj["Key"] not in keep]
        for obj_key in stale:
            s3.delete_object(Bucket=bucket, Key=obj_key)
    except Exception as exc:  # a write key without list/delete rights must not fail a release
        log.warning("could not prune old parts under %s: %s", where, type(exc).__name__)
        return []
    return stale


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
