"""``env-example`` and ``settings-doc``: the files generated from the settings schema.

``.env.example``, ``docs/configuration.md`` and the group list in ``docs/configuring.md`` are never
edited by hand: whoever adds a setting reruns these. ``--check`` (in ``make lint``) exits 1 and
names each file that is out of date, so a stale one cannot be merged unnoticed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from azaion_assets.cli.settings_args import EXIT_CONFIG
from azaion_assets.lib.config.envfile import render_env_example
from azaion_assets.lib.config.settings_doc import (
    DOC_FILE,
    GUIDE_FILE,
    render_group_list,
    render_reference,
    splice,
)
from azaion_assets.lib.fsio.atomic import atomic_write_text


def _write_or_check(path: Path, text: str, check: bool, command: str) -> bool:
    """Write ``text`` to ``path``, or with ``check`` only say whether it already holds it."""
    if check:
        current = path.read_text("utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date; run: azaion-assets {command}", file=sys.stderr)
            return False
        return True
    atomic_write_text(path, text)
    print(f"wrote {path}")
    return True


def cmd_env_example(args: argparse.Namespace) -> int:
    fresh = _write_or_check(Path(args.output), render_env_example(), args.check, "env-example")
    return 0 if fresh else 1


def cmd_settings_doc(args: argparse.Namespace) -> int:
    guide = Path(args.guide)
    try:
        guide_text = splice(guide.read_text("utf-8"), render_group_list())
    except (OSError, ValueError) as exc:
        print(f"{guide}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    fresh = [
        _write_or_check(Path(args.output), render_reference(), args.check, "settings-doc"),
        _write_or_check(guide, guide_text, args.check, "settings-doc"),
    ]
    return 0 if all(fresh) else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    env = sub.add_parser("env-example", help="write .env.example from the settings schema")
    env.add_argument("--output", default=".env.example")
    env.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    env.set_defaults(func=cmd_env_example)

    doc = sub.add_parser(
        "settings-doc",
        help=f"write the configuration reference ({DOC_FILE}) and the groups in {GUIDE_FILE}",
    )
    doc.add_argument("--output", default=DOC_FILE, help="the reference (default: %(default)s)")
    doc.add_argument(
        "--guide", default=GUIDE_FILE, help="holds the group list between the settings markers"
    )
    doc.add_argument("--check", action="store_true", help="exit 1 if either file is out of date")
    doc.set_defaults(func=cmd_settings_doc)
