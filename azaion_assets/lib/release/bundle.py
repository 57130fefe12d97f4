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

The manifest and its checks are ``release_manifest``; the way back, for an edge device or an
offline check, is ``reassembly``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azaion_assets.lib.champion.files import held_partition, publish_lock, read_record
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.fsio.atomic import atomic_write_bytes, atomic_write_text
from azaion_assets.lib.fsio.locks import file_lock
from azaion_assets.lib.release import cdn
from azaion_assets.lib.release.azaion_api import ApiError, AzaionApi
from azaion_assets.lib.release.crypto import DecryptionError, Scheme, decrypt, encrypt, split
from azaion_assets.lib.release.release_manifest import (
    FORMAT,
    MANIFEST,
    POINTER,
    ReleaseError,
    manifest_entry,
    parse_manifest,
    partition_prefix,
    read_manifest,
    sha256,
)

log = logging.getLogger(__name__)


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
    if manifest_entry(old["name"], plain_id, (small, big), *where) != old:
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
        entries.append(manifest_entry(name, plain_id, (small, big), partition, prefix))
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
