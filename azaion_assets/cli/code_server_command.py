"""``azaion-assets wait-code-server HOST PORT``: the code server unit's ``ExecStartPost=``, so
that systemd counts the unit as started (and starts the units ordered after it) only once the
code server serves."""

from __future__ import annotations

import argparse
import sys
import time


def wait_serving(host: str, port: int, timeout: float) -> bool:
    """Until the code server on ``host:port`` lists its repositories, as the daemon's first
    call does; False after ``timeout`` seconds. Dagster has no public client for this call
    (``dagster api grpc-health-check`` answers before the code has loaded), so it uses the
    daemon's own; any failure of it means not serving yet."""
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(host=host, port=port)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.list_repositories()
            return True
        except Exception:  # unreachable, or the code is still loading
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)


def cmd_wait(args: argparse.Namespace) -> int:
    if wait_serving(args.host, args.port, args.timeout):
        return 0
    print(f"no code server on {args.host}:{args.port} after {args.timeout:.0f} s", file=sys.stderr)
    return 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    wait = sub.add_parser("wait-code-server", help="wait until the code server serves")
    wait.add_argument("host")
    wait.add_argument("port", type=int)
    wait.add_argument("--timeout", type=float, default=120)
    wait.set_defaults(func=cmd_wait)
