"""The stream reader process: what it reads, how its errors surface, and that it never lingers."""

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from azaion_assets.dev.localbroker import free_port
from azaion_assets.lib.ingest import apply_events as ingest_module
from azaion_assets.lib.ingest.partition_run import ingest_partition
from azaion_assets.lib.stream.client import StreamError, probe_tail, publish, read_range
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets.lib.stream.range_reader import StreamReader, gap_and_start
from azaion_assets_tests.processes import ends_within

MESSAGES = [(f"m{i}".encode() * (i * 997 % 5000), {"k": i}) for i in range(300)]


def _children() -> set[int]:
    """This process's child processes, zombies included (they are not reaped yet)."""
    found = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        found |= {int(p) for p in (task / "children").read_text().split()}
    return found


@pytest.fixture
def no_new_children(broker):
    """The test leaves no child process behind (the session broker is one, started before)."""
    before = _children()
    yield
    assert _children() <= before


def test_batches_hold_exactly_what_reading_in_process_gives(stream, no_new_children):
    asyncio.run(publish(stream, MESSAGES))
    tail = asyncio.run(probe_tail(stream))
    assert tail is not None
    expected: list = []
    asyncio.run(read_range(stream, 0, tail, lambda *item: expected.append(item), 5.0))
    with StreamReader(stream, OffsetRange(0, tail), 5.0, batch=7) as reader:
        batches = list(reader.batches())
    assert reader.gap is None
    assert max(len(b) for b in batches) == 7
    assert [item for batch in batches for item in batch] == expected
    assert len(expected) == len(MESSAGES)


def test_a_batch_closes_at_its_bytes_and_a_large_message_goes_alone(stream, no_new_children):
    messages = [(bytes([i]) * (30_000 if i % 10 else 120_000), {}) for i in range(40)]
    asyncio.run(publish(stream, messages))
    with StreamReader(stream, OffsetRange(0, 39), 5.0, batch=32, batch_bytes=100_000) as reader:
        batches = list(reader.batches())
    assert [len(item[1]) for b in batches for item in b] == [len(m[0]) for m in messages]
    for batch in batches:
        sizes = [len(item[1]) for item in batch]
        assert sum(sizes[:-1]) < 100_000, sizes  # it closed at the first to reach the bytes
    assert any(len(b) == 1 and len(b[0][1]) == 120_000 for b in batches)


def test_broker_trouble_in_the_reader_is_a_stream_error_here(broker, tree, no_new_children):
    unreachable = dataclasses.replace(broker, port=free_port(), password="hunter2", stream="x")
    with pytest.raises(StreamError) as info:
        ingest_partition(unreachable, tree, OffsetRange(0, 9).key, 1 << 20)
    assert f"127.0.0.1:{unreachable.port}" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_stalled_stream_times_out_with_the_offset(stream, tree, no_new_children):
    asyncio.run(publish(stream, [(b"only", {})]))
    tail = asyncio.run(probe_tail(stream))
    assert tail is not None
    started = time.monotonic()
    with pytest.raises(StreamError, match=f"while reading {tail}..{tail + 100}"):
        ingest_partition(stream, tree, OffsetRange(tail, tail + 100).key, 1 << 20, 1.0)
    assert time.monotonic() - started < 10


def test_an_applier_failure_stops_the_reader(stream, tree, monkeypatch, no_new_children):
    asyncio.run(publish(stream, MESSAGES))
    tail = asyncio.run(probe_tail(stream))
    assert tail is not None

    def broken(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ingest_module, "decode_message", broken)
    with pytest.raises(OSError, match="No space"):
        ingest_partition(stream, tree, OffsetRange(0, tail).key, 1 << 20)


def test_the_gap_and_where_reading_starts():
    wanted = OffsetRange(10, 20)
    assert gap_and_start(wanted, None) == (wanted, None)
    assert gap_and_start(wanted, 5) == (None, 10)
    assert gap_and_start(wanted, 15) == (OffsetRange(10, 14), 15)
    assert gap_and_start(wanted, 21) == (wanted, None)


_KILLED_PARENT = """
import sys, time
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets.lib.stream.client import StreamTarget
from azaion_assets.lib.stream.range_reader import StreamReader
target = StreamTarget(*sys.argv[1:4], password=sys.argv[4], stream=sys.argv[5])
reader = StreamReader(target, OffsetRange(0, int(sys.argv[6])), 30.0, batch=1)
print(reader._child.pid, flush=True)
time.sleep(60)  # never reads: the reader blocks on a full pipe
"""


def test_the_reader_dies_with_its_caller(stream):
    asyncio.run(publish(stream, MESSAGES))
    tail = asyncio.run(probe_tail(stream))
    assert tail is not None
    args = [stream.host, str(stream.port), stream.user, stream.password, stream.stream, str(tail)]
    caller = subprocess.Popen(
        [sys.executable, "-c", _KILLED_PARENT, *args], stdout=subprocess.PIPE, text=True
    )
    assert caller.stdout is not None
    reader = int(caller.stdout.readline())
    time.sleep(1.0)  # the reader is up and reading
    assert Path(f"/proc/{reader}").exists()
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    assert ends_within(reader, 5)
