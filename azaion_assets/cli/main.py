"""``azaion-assets``: configuration and its generated files, data tree, synthetic data, the demo,
releases, predictions.

Exit codes: 0 success, 1 a failed run, 2 invalid configuration or usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from azaion_assets.cli.code_server_command import add_parser as add_wait_parser
from azaion_assets.cli.dev_commands import add_parsers as add_dev_parsers
from azaion_assets.cli.generated_files import add_parsers as add_generated_parsers
from azaion_assets.cli.predict_command import add_parser as add_predict_parser
from azaion_assets.cli.release_command import add_parser as add_release_parser
from azaion_assets.cli.settings_args import (
    EXIT_CONFIG,
    checked_settings,
    scope_summary,
    scopes_of,
    settings_from_args,
)
from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.envfile import render_config_yaml
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.config.settings import DEFAULT_CONFIG_FILE, DEFAULT_ENV_FILE
from azaion_assets.lib.config.settings_views import public_dict
from azaion_assets.lib.fsio.atomic import atomic_write_text


def cmd_config_check(args: argparse.Namespace) -> int:
    scopes = scopes_of(args)
    try:
        settings = checked_settings(args, scopes, only_scopes=True)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        print(scope_summary(exc.problems, scopes), file=sys.stderr)
        return EXIT_CONFIG
    for key, value in public_dict(settings).items():
        print(f"{key}={'' if value is None else value}")
    print("configuration OK", file=sys.stderr)
    return 0


def cmd_config_render(args: argparse.Namespace) -> int:
    settings = checked_settings(args, scopes_of(args))
    out = Path(args.output)
    atomic_write_text(out, render_config_yaml(settings), mode=0o600)
    print(f"wrote {out} (mode 0600)")
    return 0


def cmd_tree(args: argparse.Namespace) -> int:
    tree = DataTree.from_settings(settings_from_args(args)).ensure()
    print(tree.root)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="azaion-assets", description=__doc__)
    parser.add_argument(
        "--config", help=f"config.yaml to read (default: ./{DEFAULT_CONFIG_FILE}, if present)"
    )
    parser.add_argument(
        "--env-file", help=f".env file to read (default: ./{DEFAULT_ENV_FILE}, if present)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    config_command = sub.add_parser("config", help="check or render the configuration")
    config_sub = config_command.add_subparsers(dest="action", required=True)
    scope_help = "only the variables these parts need (default: all)"
    check = config_sub.add_parser("check", help="list every missing or invalid variable")
    check.add_argument(
        "--scope", action="append", choices=[s.value for s in Scope], help=scope_help
    )
    check.set_defaults(func=cmd_config_check)
    render = config_sub.add_parser("render", help="validate, then write config.yaml (mode 0600)")
    render.add_argument(
        "--scope", action="append", choices=[s.value for s in Scope], help=scope_help
    )
    render.add_argument("--output", default=str(DEFAULT_CONFIG_FILE))
    render.set_defaults(func=cmd_config_render)

    add_generated_parsers(sub)
    sub.add_parser("tree", help="create the data tree").set_defaults(func=cmd_tree)

    add_dev_parsers(sub)
    add_release_parser(sub)
    add_wait_parser(sub)
    add_predict_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
