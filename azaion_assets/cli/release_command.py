"""``azaion-assets release``: take a release apart again, to verify it.

- ``release fetch --out DIR`` does what an edge device does: reads the manifest and the small
  parts from the Azaion API, the big parts from the CDN (read key pair of ``cdn.yaml``), then
  reassembles, decrypts and checks every sha256 of the manifest.
- ``release decrypt PARTS_DIR --out DIR`` does the same from the parts kept beside a model
  (``models/azaion-YYYY-MM-DD/release``), offline.

The key comes from ``MODEL_ENCRYPTION_KEY`` (environment, ``.env`` or ``config.yaml``), never from
the command line, where other users could read it. Exit 1 when a release does not verify.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from azaion_assets.cli.settings_args import settings_from_args
from azaion_assets.lib.release import cdn
from azaion_assets.lib.release.azaion_api import ApiError, api_from_settings
from azaion_assets.lib.release.hardware import fingerprint
from azaion_assets.lib.release.reassembly import fetch, reassemble_local
from azaion_assets.lib.release.release_manifest import ReleaseError


def _report(manifest: dict[str, Any], out: Path) -> None:
    for entry in manifest["files"]:
        print(f"{out / entry['name']}  sha256 {entry['plaintext_sha256']}  verified")
    print(f"release {manifest['partition']} ({manifest['scheme']}) reassembled in {out}")


def cmd_fetch(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    key = settings.require("MODEL_ENCRYPTION_KEY")
    hardware = fingerprint()
    out = Path(args.out)
    try:
        api = api_from_settings(settings)
        folders = (settings.release_api_folder, settings.release_cdn_config_folder)
        manifest = fetch(api, hardware, key, out, *folders)
    except (ApiError, cdn.CdnError, ReleaseError, OSError) as exc:
        print(f"release fetch failed: {exc}", file=sys.stderr)
        return 1
    _report(manifest, out)
    return 0


def cmd_decrypt(args: argparse.Namespace) -> int:
    key = settings_from_args(args).require("MODEL_ENCRYPTION_KEY")
    out = Path(args.out)
    try:
        manifest = reassemble_local(Path(args.parts), key, out)
    except (ReleaseError, OSError) as exc:
        print(f"release decrypt failed: {exc}", file=sys.stderr)
        return 1
    _report(manifest, out)
    return 0


def add_parser(sub: Any) -> None:
    release = sub.add_parser("release", help="fetch or decrypt a model release, to verify it")
    actions = release.add_subparsers(dest="action", required=True)
    fetch_cmd = actions.add_parser(
        "fetch", help="download the current release from the API and CDN, decrypt and verify"
    )
    fetch_cmd.add_argument("--out", required=True, help="folder for azaion.pt and azaion.onnx")
    fetch_cmd.set_defaults(func=cmd_fetch)
    decrypt_cmd = actions.add_parser(
        "decrypt", help="reassemble and verify the parts kept in a model's release folder"
    )
    decrypt_cmd.add_argument("parts", help="e.g. /azaion/models/azaion-2026-11-25/release")
    decrypt_cmd.add_argument("--out", required=True, help="folder for azaion.pt and azaion.onnx")
    decrypt_cmd.set_defaults(func=cmd_decrypt)
