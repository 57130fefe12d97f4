"""The commands that drive the dev stand-ins: ``synthetic``, ``publish`` and ``demo``.

They import ``azaion_assets.dev`` only when run: the wheel (and so the image) leaves the dev
stand-ins out, and there these commands say so instead of failing on an import.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from azaion_assets.cli.settings_args import checked_settings, settings_from_args
from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.stream.events import Role

DEMO_ASSETS = "dataset,model,onnx_model,champion,model_release,champion_monitor"


def _dev(module: str) -> ModuleType:
    try:
        return importlib.import_module(f"azaion_assets.dev.{module}")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(("azaion_assets.dev", "moto")):
            raise
        raise ConfigError(
            [f"the dev stand-ins are not installed ({exc.name}): run this from a checkout "
             "after `make install`, which installs the [demo] extra"]
        ) from None  # fmt: skip


def cmd_synthetic(args: argparse.Namespace) -> int:
    write_samples = _dev("synthetic").write_samples
    tree = DataTree.from_settings(settings_from_args(args)).ensure()
    target = tree.seed if args.unvalidated else tree.data
    written = write_samples(target, args.count, seed=args.seed)
    print(f"wrote {len(written)} annotations to {target.root}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Send Azaion messages to the stream: synthetic, a YOLO folder, or bulk validate/delete."""
    import asyncio

    messages = _dev("messages")
    from azaion_assets.lib.stream.client import probe_tail, publish
    from azaion_assets.lib.stream.events import Role, Status
    from azaion_assets.lib.stream.stream_connection import StreamTarget

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
    -> ONNX, on a real instance (see ``azaion_assets.dev.demo``)."""
    run_demo = _dev("demo").run_demo

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
                    "new_data_mAP50-95",
                    "new_images",
                    "new_videos",
                )
            }
            print(f"{key:<13} {shown}")
    from azaion_assets.lib.ingest.apply_events import state_path
    from azaion_assets.lib.ingest.ingest_state import IngestState

    with IngestState(state_path(tree)) as state:
        print(f"stream        {state.totals()} (every segment the ingest runs applied)")
    print(f"data tree     {tree.root}")
    print(f"champion      {tree.champion}")
    print(f"onnx          {tree.champion_onnx}")
    print(f"instance      {os.environ['DAGSTER_HOME']}")
    print(
        "UI            make dev   (dagster dev on http://127.0.0.1:3000: Catalog > champion, "
        f"daily_arrivals {partition}, champion_monitor; Automation > retraining_sensor; "
        "docs/operator-ui.md)"
    )


def add_parsers(sub: argparse._SubParsersAction) -> None:
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
