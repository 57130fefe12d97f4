"""``azaion-assets``: configuration, data tree, synthetic data, the demo, releases, predictions.

Exit codes: 0 success, 1 a failed run, 2 invalid configuration or usage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from azaion_assets.cli_predict import add_parser as add_predict_parser
from azaion_assets.cli_release import add_parser as add_release_parser
from azaion_assets.cli_release import settings_from_args
from azaion_assets.core.atomic import atomic_write_text
from azaion_assets.core.contract import Role
from azaion_assets.core.datatree import DataTree
from azaion_assets.core.envfile import render_config_yaml, render_env_example
from azaion_assets.core.settings import (
    DEFAULT_CONFIG_FILE,
    DEFAULT_ENV_FILE,
    ConfigError,
    Scope,
    Settings,
    missing_for,
)
from azaion_assets.core.synthetic import write_samples
from azaion_assets.core.training import BaseModelError, resolve_base_model

EXIT_CONFIG = 2
DEMO_ASSETS = "dataset,model,onnx_model,champion,model_release"


def checked_settings(args: argparse.Namespace, scopes: set[Scope] | None) -> Settings:
    """Load and validate for ``scopes`` (None = all); raise ``ConfigError`` with every problem."""
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        extra = missing_for(exc.absent, scopes) if exc.absent is not None else []
        raise ConfigError(exc.problems + extra) from None
    problems = settings.missing(scopes)
    if scopes is None or Scope.TRAINING in scopes:
        try:
            resolve_base_model(settings.training_model, DataTree.from_settings(settings).models)
        except BaseModelError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError(problems)
    return settings


def _scopes(args: argparse.Namespace) -> set[Scope] | None:
    return {Scope(s) for s in args.scope} if args.scope else None


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = checked_settings(args, _scopes(args))
    for key, value in settings.public_dict().items():
        print(f"{key}={'' if value is None else value}")
    print("configuration OK", file=sys.stderr)
    return 0


def cmd_config_render(args: argparse.Namespace) -> int:
    settings = checked_settings(args, _scopes(args))
    out = Path(args.output)
    atomic_write_text(out, render_config_yaml(settings), mode=0o600)
    print(f"wrote {out} (mode 0600)")
    return 0


def cmd_env_example(args: argparse.Namespace) -> int:
    text = render_env_example()
    if args.check:
        current = Path(args.output).read_text("utf-8") if Path(args.output).exists() else ""
        if current != text:
            print(f"{args.output} is out of date; run: azaion-assets env-example", file=sys.stderr)
            return 1
        return 0
    atomic_write_text(Path(args.output), text)
    print(f"wrote {args.output}")
    return 0


def cmd_tree(args: argparse.Namespace) -> int:
    tree = DataTree.from_settings(settings_from_args(args)).ensure()
    print(tree.root)
    return 0


def cmd_synthetic(args: argparse.Namespace) -> int:
    tree = DataTree.from_settings(settings_from_args(args)).ensure()
    target = tree.seed if args.unvalidated else tree.data
    written = write_samples(target, args.count, seed=args.seed)
    print(f"wrote {len(written)} annotations to {target.root}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Send Azaion messages to the stream: synthetic, a YOLO folder, or bulk validate/delete."""
    import asyncio

    from azaion_assets.core import messages
    from azaion_assets.core.contract import Role, Status
    from azaion_assets.core.stream import StreamTarget, probe_tail, publish

    settings = checked_settings(args, {Scope.STREAM})
    target = StreamTarget.from_settings(settings)
    author = messages.Author(Role[args.role.upper()], args.email)
    if args.what == "synthetic":
        batch = messages.synthetic(
            args.count, author, seed=args.seed, prefix=args.prefix, videos=args.videos
        )
    elif args.what == "folder":
        status = Status.EDITED if args.edited else Status.CREATED
        batch = messages.yolo_folder(Path(args.path), author, status)
    else:
        names = [*args.names, *_names_from(args.names_file)]
        if not names:
            raise ConfigError([f"publish {args.what}: give names or --names-file"])
        status = Status.VALIDATED if args.what == "validate" else Status.DELETED
        batch = iter([messages.bulk(names, status, author)])
    sent = asyncio.run(publish(target, batch, batch_size=args.batch_size))
    tail = asyncio.run(probe_tail(target))
    print(f"sent {sent} messages to {target.where()}; tail offset {tail}")
    return 0


def _names_from(path: str | None) -> list[str]:
    if not path:
        return []
    return [line.strip() for line in Path(path).read_text("utf-8").splitlines() if line.strip()]


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: synthetic messages -> stream -> sensor -> annotations -> dataset -> model
    -> ONNX, on a real instance (see ``azaion_assets.demo``)."""
    from azaion_assets.demo import run_demo

    settings = checked_settings(args, {Scope.TRAINING})
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ConfigError(["DAGSTER_HOME is not set (the demo records its runs there)"])
    if args.fresh:
        _start_fresh(Path(settings.azaion_root_dir), Path(home))
    DataTree.from_settings(settings).ensure()
    partition = args.partition or datetime.now(UTC).date().isoformat()
    if run_demo(settings, args.count, args.seed, partition) != 0:
        print("demo run failed; see the run log above or in the UI", file=sys.stderr)
        return 1
    _print_summary(DataTree.from_settings(settings), partition)
    return 0


def _start_fresh(root: Path, home: Path) -> None:
    """The local broker's stream is new on every demo, so the instance's stream cursor and
    partitions from an earlier demo would point past it: start both from scratch."""
    if os.environ.get("RABBITMQ_HOST"):
        raise ConfigError(["--fresh is for the demo's own local broker; RABBITMQ_HOST is set"])
    shutil.rmtree(root, ignore_errors=True)
    for entry in home.iterdir() if home.is_dir() else []:
        if entry.name != "dagster.yaml":  # the instance's configuration stays
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    print(f"fresh demo state: emptied {root} and {home} (dagster.yaml kept)")


def _print_summary(tree: DataTree, partition: str) -> None:
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.get() as instance:
        print("\n== azaion-assets demo: done ==")
        for key in DEMO_ASSETS.split(","):
            event = instance.get_latest_materialization_event(AssetKey(key))
            meta = (
                event.asset_materialization.metadata
                if event and event.asset_materialization
                else {}
            )
            shown = {
                k: getattr(v, "value", v)
                for k, v in meta.items()
                if k
                in (
                    "path",
                    "images",
                    "corrupted",
                    "diagnostic_val_mAP50-95",
                    "wall_time_s",
                    "device",
                    "opset",
                    "onnx_latency_ms",
                    "torch_latency_ms",
                    "promoted",
                    "imgsz",
                    "parity_compared",
                    "verdict",
                    "decision",
                    "test_mAP50",
                    "test_mAP50-95",
                    "champion_test_mAP50-95",
                    "partition",
                    "promotion",
                    "scheme",
                    "manifest",
                    "cdn_uploaded",
                )
            }
            print(f"{key:<13} {shown}")
    from azaion_assets.core.ingest import state_path
    from azaion_assets.core.ingest_state import IngestState

    with IngestState(state_path(tree)) as state:
        print(f"stream        {state.totals()} (all annotations partitions)")
    print(f"data tree     {tree.root}")
    print(f"champion      {tree.champion}")
    print(f"onnx          {tree.champion_onnx}")
    print(f"instance      {os.environ['DAGSTER_HOME']}")
    print(
        "UI            make dev   (dagster dev on http://127.0.0.1:3000; "
        f"open Assets > onnx_model, partition {partition})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="azaion-assets", description=__doc__)
    parser.add_argument(
        "--config", help=f"config.yaml to read (default: ./{DEFAULT_CONFIG_FILE}, if present)"
    )
    parser.add_argument(
        "--env-file", help=f".env file to read (default: ./{DEFAULT_ENV_FILE}, if present)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    config = sub.add_parser("config", help="check or render the configuration")
    config_sub = config.add_subparsers(dest="action", required=True)
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

    env = sub.add_parser("env-example", help="write .env.example from the settings schema")
    env.add_argument("--output", default=".env.example")
    env.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    env.set_defaults(func=cmd_env_example)

    sub.add_parser("tree", help="create the data tree").set_defaults(func=cmd_tree)

    synth = sub.add_parser("synthetic", help="write synthetic annotations into data/")
    synth.add_argument("--count", type=int, default=64)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--unvalidated", action="store_true", help="write to data-seed/ instead")
    synth.set_defaults(func=cmd_synthetic)

    pub = sub.add_parser("publish", help="send Azaion messages to the annotation stream")
    pub.add_argument("--role", default="validator", choices=[r.name.lower() for r in Role])
    pub.add_argument("--email", default="publisher@azaion.local", help="createdEmail")
    pub.add_argument("--batch-size", type=int, default=10, help="messages per send_batch")
    pub_sub = pub.add_subparsers(dest="what", required=True)
    p_syn = pub_sub.add_parser("synthetic", help="N rendered images with known boxes (Created)")
    p_syn.add_argument("count", type=int)
    p_syn.add_argument("--seed", type=int, default=0)
    p_syn.add_argument("--prefix", default="synthetic", help="annotation name prefix")
    p_syn.add_argument(
        "--videos", type=int, default=None, help="frames of N videos (default: one per image)"
    )
    p_dir = pub_sub.add_parser("folder", help="a YOLO folder: images/ + labels/ (Created)")
    p_dir.add_argument("path")
    p_dir.add_argument("--edited", action="store_true", help="send as Edited instead")
    for what in ("validate", "delete"):
        p_bulk = pub_sub.add_parser(what, help=f"bulk {what} annotations by name")
        p_bulk.add_argument("names", nargs="*")
        p_bulk.add_argument("--names-file", help="a file with one name per line")
    pub.set_defaults(func=cmd_publish)

    demo = sub.add_parser("demo", help="synthetic data -> dataset -> model -> ONNX")
    demo.add_argument("--count", type=int, default=96)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--partition", help="YYYY-MM-DD (default: today, UTC)")
    demo.add_argument(
        "--fresh",
        action="store_true",
        help="empty AZAION_ROOT_DIR and DAGSTER_HOME first (local broker only; make demo does)",
    )
    demo.set_defaults(func=cmd_demo)
    add_release_parser(sub)
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
