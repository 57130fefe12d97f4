"""The stream client against a real RabbitMQ stream (a throwaway broker unless RABBITMQ_HOST)."""

import asyncio
import dataclasses
import random

import pytest

from azaion_assets.dev.localbroker import free_port
from azaion_assets.dev.synthetic import render
from azaion_assets.lib.stream.client import probe_tail, publish, read_range
from azaion_assets.lib.stream.contract import decode_message, pack
from azaion_assets.lib.stream.events import AnnotationEvent
from azaion_assets.lib.stream.stream_connection import StreamError


def _read(target, first, last):
    got = []
    count = asyncio.run(
        read_range(target, first, last, lambda o, b, p: got.append((o, b, dict(p))), 5.0)
    )
    assert count == len(got)
    return got


def test_publish_probe_and_read_back(stream):
    sent = asyncio.run(
        publish(
            stream, ((f"m{i}".encode(), {"AnnotationStatus": 10}) for i in range(25)), batch_size=10
        )
    )
    assert sent == 25
    tail = asyncio.run(probe_tail(stream))
    assert tail is not None
    got = _read(stream, 0, tail)
    assert [b for _, b, _ in got] == [f"m{i}".encode() for i in range(25)]
    offsets = [o for o, _, _ in got]
    assert offsets == sorted(offsets) and offsets[-1] == tail
    assert all(p[b"AnnotationStatus"] == 10 for _, _, p in got)


def test_a_range_reads_exactly_its_messages(stream):
    asyncio.run(publish(stream, ((f"m{i}".encode(), {}) for i in range(30))))
    everything = _read(stream, 0, asyncio.run(probe_tail(stream)))
    offsets = [o for o, _, _ in everything]
    middle = _read(stream, offsets[7], offsets[19])
    assert [b for _, b, _ in middle] == [f"m{i}".encode() for i in range(7, 20)]


def test_tail_moves_with_new_messages(stream):
    asyncio.run(publish(stream, [(b"a", {})]))
    first = asyncio.run(probe_tail(stream))
    asyncio.run(publish(stream, [(b"b", {}), (b"c", {})]))
    second = asyncio.run(probe_tail(stream))
    assert first is not None and second is not None and second > first


def test_an_empty_or_missing_stream_has_no_tail(stream):
    assert asyncio.run(probe_tail(stream, timeout=1.0)) is None


def test_an_annotation_survives_the_trip(stream):
    image, _ = render(random.Random(3), 64, 48)
    dets = '[{"cls":6,"x":0.5,"y":0.5,"w":0.2,"h":0.2}]'
    fields = [
        "2026-11-24T10:00:00Z",
        "clip_1",
        "clip.mp4",
        5,
        ".jpg",
        dets,
        image,
        20,
        "v@azaion.com",
        1,
        10,
    ]
    asyncio.run(publish(stream, [(pack(fields), {"AnnotationStatus": 10})]))
    ((_, body, props),) = _read(stream, 0, asyncio.run(probe_tail(stream)))
    event = decode_message(body, props).event
    assert isinstance(event, AnnotationEvent) and event.image == image


def test_an_unreachable_broker_is_a_clear_error_without_the_password(broker):
    target = dataclasses.replace(broker, port=free_port(), password="hunter2-secret", stream="x")
    with pytest.raises(StreamError) as info:
        asyncio.run(probe_tail(target))
    assert f"127.0.0.1:{target.port}" in str(info.value)
    assert "hunter2" not in str(info.value) and "hunter2" not in repr(target)


def test_reading_past_the_tail_times_out_with_the_offset(stream):
    asyncio.run(publish(stream, [(b"only", {})]))
    tail = asyncio.run(probe_tail(stream))
    assert tail is not None
    with pytest.raises(StreamError, match=f"while reading {tail}..{tail + 100}"):
        asyncio.run(read_range(stream, tail, tail + 100, lambda *a: None, idle_timeout=1.0))


def test_the_fast_reader_reads_exactly_what_stock_rstream_reads(stream, monkeypatch):
    rng = random.Random(7)
    sizes = [0, 1, 3, 255, 256, 257, 4096, 65_537, 300_000]  # across rstream's 256-byte steps
    sent = [(rng.randbytes(n), {"AnnotationStatus": 10, "n": i}) for i, n in enumerate(sizes * 4)]
    asyncio.run(publish(stream, sent, batch_size=5))
    tail = asyncio.run(probe_tail(stream))
    assert tail is not None

    steps = {"count": 0}  # StreamReader.read is what the stock reader awaits per 256 bytes
    real_read = asyncio.StreamReader.read

    async def counting_read(self, n=-1):
        steps["count"] += 1
        return await real_read(self, n)

    monkeypatch.setattr(asyncio.StreamReader, "read", counting_read)

    def read(fast: bool):
        got, steps["count"] = [], 0
        asyncio.run(
            read_range(stream, 0, tail, lambda o, b, p: got.append((o, b, dict(p))), 5.0, fast)
        )
        return got, steps["count"]

    stock, stock_steps = read(fast=False)
    fast, fast_steps = read(fast=True)
    assert fast == stock
    assert [b for _, b, _ in fast] == [b for b, _ in sent]
    assert stock_steps > sum(sizes) * 4 // 256 and fast_steps < 50  # handshakes only


def test_the_fast_reader_takes_over_bytes_the_stock_reader_buffered():
    from types import SimpleNamespace

    from rstream.connection import ConnectionClosed

    from azaion_assets.lib.stream.frames import read_whole_frames

    async def scenario():
        reader = asyncio.StreamReader()
        reader.feed_data(b"cdefgh")
        reader.feed_eof()
        conn = SimpleNamespace(_reader=reader, _buffer=bytearray(b"ab"))
        read_whole_frames(conn)
        got = [await conn._read(1), await conn._read(3), await conn._read(4)]
        assert [bytes(g) for g in got] == [b"a", b"bcd", b"efgh"] and not conn._buffer
        with pytest.raises(ConnectionClosed):
            await conn._read(1)

    asyncio.run(scenario())
