"""Run one ingest of partitions in a child process, as one run does, for the kill tests.

    python -m azaion_assets_tests.ingest_child <root> <partition>[,<partition>...] <group_size>
        [<s/message>]

The stream comes from RABBITMQ_* in the environment, as in a real run. Prints the number of
messages of each partition, in order, as ``key=count``.
"""

import sys
import time
from pathlib import Path

from azaion_assets.lib.config.sources import load_settings
from azaion_assets.lib.ingest.partition_run import ingest_partitions
from azaion_assets.lib.stream.stream_connection import StreamTarget
from azaion_assets_tests.treeview import make_tree


def _slow_down(seconds: float) -> None:
    """Stretch the run (a slow disk, in effect) so that kills land in the middle of it."""
    from azaion_assets.lib.ingest import apply_events as ingest

    real = ingest.decode_message

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return real(*args, **kwargs)

    ingest.decode_message = slow  # type: ignore[assignment]


if __name__ == "__main__":
    root, partitions, group_size = Path(sys.argv[1]), sys.argv[2].split(","), int(sys.argv[3])
    _slow_down(float(sys.argv[4]) if len(sys.argv) > 4 else 0.0)
    target = StreamTarget.from_settings(load_settings())
    tree = make_tree(root)
    for result in ingest_partitions(target, tree, partitions, 1 << 20, group_size=group_size):
        print(f"{result.partition}={result.summary['messages']}", flush=True)
