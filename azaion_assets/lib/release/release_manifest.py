"""The release manifest: what a release holds, how its parts are named, and its checks.

The manifest is what the edge trusts first (its names become paths and object keys), so it is
parsed and checked in one place, for the release that builds it and the edge that reads it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from azaion_assets.lib.release.crypto import SCHEMES

FORMAT = 1
MANIFEST = "release.json"
POINTER = "azaion.release.json"
FILES = ("azaion.pt", "azaion.onnx")
CARD_OF = "azaion.onnx"  # the file the model card describes
ID_CHARS = 16


class ReleaseError(RuntimeError):
    """A release cannot be built, published or reassembled (no key material inside)."""


def sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def partition_prefix(prefix: str, partition: str) -> str:
    return f"{prefix.strip('/')}/azaion-{partition}/".lstrip("/")


def manifest_entry(
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
