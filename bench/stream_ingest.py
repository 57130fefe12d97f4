"""Benchmark: ingest N stream messages of about 100 KB each, against a raw consume of the range.

Run with ``make bench`` or ``python -m bench.stream_ingest [--count N] [--size-kb K] [--repeat R]``.

A throwaway broker (``LocalBroker``) gets N valid Created messages, published in batches: real
JPEGs of about K KB (a few noisy ones rendered once and reused under unique names) with their
boxes, a quarter by operators (to ``data-seed/``) and the rest by validators (to ``data/``).
Then, alternating, on the same offset range:

- raw: stock rstream reads the range and only counts the bytes (``read_range`` with
  ``fast_reader=False``). This is the baseline: the ingest has to read the same bytes.
- ingest: ``ingest_partition`` of the range into a fresh data tree in the work dir: decode and
  validate every message, write and fsync every image and label, fsync the directories, commit
  the logs.
- raw (our reader): ``read_range`` as the ingest uses it, for reference.
- ingest, tree in RAM: the same into ``/dev/shm`` (fsync is free there), for reference: what
  the ingest costs apart from the disk.
- ingest, header check: the ingest with the images checked as before issue 16 (Pillow reads the
  header only, ``header_check``), so the image check at the door (a JPEG's structure walked to
  its end marker, ``jpeg_structure``) is priced in the same run.

``--also CHECKOUT`` adds the ingest of another checkout (a git worktree of an older commit) as
one more contender on the same broker: an A/B of two versions under the same conditions.

Each run is a fresh subprocess, so its peak RSS (``VmHWM``) is its own (the ingest's stream
reader process is reported apart, from ``RUSAGE_CHILDREN``), and the medians are compared as
ratios measured in the same run, so a noisy machine moves them together. Memory must not grow
with the range: the ingest also runs on the first quarter of the messages and the two peaks
(its own plus its reader's) are compared. Goals: ingest >= 0.8x the raw message rate, and its
peak RSS at N messages at most 1.1x the peak at N/4.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from azaion_assets.dev.localbroker import LocalBroker
from azaion_assets.dev.messages import Author, Message, annotation
from azaion_assets.lib.stream.client import probe_head, probe_tail, publish, read_range
from azaion_assets.lib.stream.contract import DEFAULT_MAX_MESSAGE_BYTES
from azaion_assets.lib.stream.events import Role
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets.lib.stream.stream_connection import StreamTarget
from bench.timing import load_average

GOAL_RATIO = 0.8  # ingest msgs/s over raw msgs/s, at least
GOAL_FLAT = 1.1  # peak RSS at N over peak RSS at N/4, at most
VARIANTS = 8  # distinct images, reused under different names
RAM_DIR = Path("/dev/shm")
_TARGET_ENV = "AZAION_BENCH_STREAM"  # how a child learns where the stream is (and its password)

RAW, INGEST, FAST, INGEST_RAM, HEADER = (
    "raw (stock rstream)",
    "ingest",
    "raw (our reader)",
    "ingest, tree in RAM",
    "ingest, header check",
)


def noisy_jpeg(rng: random.Random, size: int) -> bytes:
    """A real JPEG of about ``size`` bytes: coloured noise over a smooth gradient."""
    from PIL import Image

    pixels = size / 0.75  # noise at quality 85 costs about 0.75 byte a pixel; refine below
    data = b""
    for _ in range(4):
        width = max(16, int((pixels * 4 / 3) ** 0.5))
        height = max(16, int(width * 3 / 4))
        noise = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
        ground = Image.linear_gradient("L").resize((width, height)).convert("RGB")
        buf = io.BytesIO()
        Image.blend(ground, noise, 0.6).save(buf, format="JPEG", quality=85)
        data = buf.getvalue()
        if abs(len(data) - size) < size * 0.03:
            break
        pixels *= size / len(data)
    with Image.open(io.BytesIO(data)) as img:
        img.load()  # decodable, not just a header
    return data


def messages(start: int, count: int, images: list[bytes], seed: int = 0) -> Iterator[Message]:
    rng = random.Random(seed + start)
    validator = Author(Role.VALIDATOR, "validator@azaion.local")
    operator = Author(Role.OPERATOR, "operator@azaion.local")
    for i in range(start, start + count):
        boxes = [
            (rng.choice((0, 1, 6, 20)), 0.5, 0.5, rng.uniform(0.05, 0.5), rng.uniform(0.05, 0.5))
            for _ in range(rng.randint(1, 4))
        ]
        author = operator if i % 4 == 0 else validator
        yield annotation(f"bench_{i:07d}", images[i % len(images)], ".jpg", boxes, author)


def fill(target: StreamTarget, count: int, size: int) -> tuple[OffsetRange, OffsetRange]:
    """Publish ``count`` messages; return the offset ranges of all of them and the first quarter."""
    rng = random.Random(0)
    images = [noisy_jpeg(rng, size) for _ in range(VARIANTS)]
    started = time.perf_counter()
    quarter = count // 4
    asyncio.run(publish(target, messages(0, quarter, images), batch_size=10))
    quarter_tail = asyncio.run(probe_tail(target))
    asyncio.run(publish(target, messages(quarter, count - quarter, images), batch_size=10))
    head, tail = asyncio.run(probe_head(target)), asyncio.run(probe_tail(target))
    assert head is not None and quarter_tail is not None and tail is not None
    mb = count * len(images[0]) / 1e6
    print(
        f"published {count} messages (~{mb:,.0f} MB, images of {len(images[0]) / 1e3:.0f} KB) "
        f"in {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    return OffsetRange(head, tail), OffsetRange(head, quarter_tail)


def create_cost(folder: Path, count: int = 200) -> float:
    """Microseconds to create an empty file in ``folder`` (the files are left for the caller).

    A few on a healthy ext4; far more shortly after many files were deleted nearby, which the
    ingest then pays twice per message.
    """
    folder.mkdir()
    started = time.perf_counter()
    for i in range(count):
        os.close(os.open(folder / f"f{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    return (time.perf_counter() - started) / count * 1e6


def peak_rss() -> int:
    """This process's peak resident set, in bytes (``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child_peak_rss() -> int:
    """The largest peak resident set of this process's reaped children (the ingest's stream
    reader), in bytes; 0 if it had none."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def header_check(image: object, _limits: object = None, _judge: object = None) -> str:
    """The image check before issue 16: Pillow reads the header, nothing is decoded."""
    from PIL import Image

    from azaion_assets.lib.stream.events import IMAGE_FORMATS

    assert isinstance(image, bytes)
    with Image.open(io.BytesIO(image)) as img:
        return IMAGE_FORMATS[str(img.format)]


def child(kind: str, first: int, last: int, workdir: Path) -> dict[str, float]:
    """One contender, in this (fresh) process."""
    target = StreamTarget(**json.loads(os.environ[_TARGET_ENV]))
    if kind == HEADER:
        from azaion_assets.lib.stream import contract

        contract.check_image = header_check  # type: ignore[assignment]
    if kind in (INGEST, INGEST_RAM, HEADER):
        from azaion_assets.lib.ingest.partition_run import ingest_partition
        from azaion_assets_tests.treeview import make_tree

        tree = make_tree(workdir / "tree")
        key = OffsetRange(first, last).key
        started = time.perf_counter()
        result = ingest_partition(target, tree, key, DEFAULT_MAX_MESSAGE_BYTES, idle_timeout=30)
        seconds = time.perf_counter() - started
        summary = result.summary
        written = sum(summary["written"].values())
        if summary["quarantined"] or written != summary["messages"]:
            raise SystemExit(f"ingest did not write every message: {summary}")
        count, size = summary["messages"], summary["bytes"]
    else:
        seen = [0, 0]

        def on_message(_offset: int, body: bytes, _props: object) -> None:
            seen[0] += 1
            seen[1] += len(body)

        started = time.perf_counter()
        asyncio.run(
            read_range(target, first, last, on_message, idle_timeout=30, fast_reader=kind == FAST)
        )
        seconds = time.perf_counter() - started
        count, size = seen
    own, reader = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return {
        "messages": count,
        "bytes": size,
        "seconds": seconds,
        "peak_rss": peak_rss(),
        "child_peak_rss": child_peak_rss(),
        # CPU of this process and its reader process, start-up included: where the time goes
        "user": own.ru_utime + reader.ru_utime,
        "system": own.ru_stime + reader.ru_stime,
    }


def spawn(
    kind: str, span: OffsetRange, target: StreamTarget, workdir: Path, code: Path | None = None
) -> dict[str, float]:
    """Run ``child`` in a fresh interpreter, in a scratch dir of ``workdir``; return its figures.
    ``code``: another checkout of this repository whose ``child`` to run (its ingest).

    Trees on disk are kept until the whole benchmark ends: on ext4 without a journal, creating
    files soon after thousands were deleted nearby is much slower (the allocator skips recently
    freed inodes), which would charge one run's clean-up to the next ingest.
    """
    scratch = Path(tempfile.mkdtemp(dir=workdir))
    args = ["--child", kind, "--first", str(span.first), "--last", str(span.last)]
    elsewhere = {"PYTHONPATH": str(code)} if code else {}
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.stream_ingest", *args, "--workdir", str(scratch)],
            cwd=code,
            env={**os.environ, **elsewhere, _TARGET_ENV: json.dumps(asdict(target))},
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
    finally:
        if workdir.is_relative_to(RAM_DIR):
            shutil.rmtree(scratch)  # RAM is scarcer than disk, and tmpfs has no such effect
    return json.loads(out.strip().splitlines()[-1])


def run(
    count: int, size: int, repeat: int, workdir: Path, others: list[Path]
) -> tuple[dict[tuple[str, int], dict], list[float]]:
    print(f"creating a file in the work dir takes {create_cost(workdir / 'probe'):.0f} us")
    ram = Path(tempfile.mkdtemp(dir=RAM_DIR)) if RAM_DIR.is_dir() else None
    try:
        with LocalBroker(base=workdir / "broker") as broker:
            target = broker.target("bench-ingest")
            whole, quarter = fill(target, count, size)
            plan: list[tuple[str, str, OffsetRange, Path, Path | None]] = [
                (kind, kind, whole, workdir, None) for kind in (RAW, INGEST, FAST, HEADER)
            ]
            plan += [(f"ingest at {_revision(o)}", INGEST, whole, workdir, o) for o in others]
            if ram is not None:
                plan.append((INGEST_RAM, INGEST_RAM, whole, ram, None))
            plan.append((INGEST, INGEST, quarter, workdir, None))
            runs: dict[tuple[str, int], list[dict]] = {}
            for i in range(repeat):
                for label, kind, span, where, code in plan:
                    got = {"user": 0.0, "system": 0.0, **spawn(kind, span, target, where, code)}
                    runs.setdefault((label, int(got["messages"])), []).append(got)
                    print(
                        f"  run {i + 1}/{repeat} {label:<20} {got['messages']:>6.0f} msgs "
                        f"{got['seconds']:6.2f}s  peak {got['peak_rss'] / 2**20:5.0f} MiB "
                        f"(reader process {got['child_peak_rss'] / 2**20:3.0f} MiB)  "
                        f"load {os.getloadavg()[0]:.2f}",  # others on the same cores skew it
                        flush=True,
                    )
    finally:
        if ram is not None:
            shutil.rmtree(ram)
    medians = {
        key: {field: statistics.median(r[field] for r in results) for field in FIELDS}
        for key, results in runs.items()
    }
    return medians, ratios(runs, count)


def _revision(checkout: Path) -> str:
    """The commit a checkout is at, to name its contender."""
    out = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or checkout.name


FIELDS = ("messages", "bytes", "seconds", "peak_rss", "child_peak_rss", "user", "system")


def ratios(runs: dict[tuple[str, int], list[dict]], count: int) -> list[float]:
    """Ingest over raw, round by round: the spread across rounds, not just the median."""
    pairs = zip(runs[(RAW, count)], runs[(INGEST, count)], strict=True)
    return [raw["seconds"] / ingest["seconds"] for raw, ingest in pairs]


def _both_peaks(figures: dict) -> float:
    """The ingest's memory: its own peak plus its stream reader process's."""
    return figures["peak_rss"] + figures["child_peak_rss"]


def _mib_or_dash(size: float) -> str:
    return f"{size / 2**20:,.0f} MiB" if size else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--size-kb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument(
        "--also",
        type=Path,
        action="append",
        default=[],
        metavar="CHECKOUT",
        help="also run the ingest of another checkout of this repository (a git worktree of an "
        "older commit, say) on the same broker, alternated with the others: an A/B in one run",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--last", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.first, args.last, args.workdir)))
        return 0

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        others = [o.resolve() for o in args.also]
        medians, spread = run(args.count, args.size_kb * 1000, args.repeat, Path(tmp), others)
    raw = medians[(RAW, args.count)]
    raw_rate = raw["messages"] / raw["seconds"]
    print(f"\n{args.count} messages of ~{args.size_kb} KB, median of {args.repeat} runs")
    print(
        "| contender | messages | seconds | msgs/s | MB/s | ratio to raw | peak RSS "
        "| reader process peak RSS | CPU user + system |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (kind, n), m in medians.items():
        rate = m["messages"] / m["seconds"]
        print(
            f"| {kind} | {n:,} | {m['seconds']:.2f} | {rate:,.0f} | "
            f"{m['bytes'] / m['seconds'] / 1e6:,.1f} | {rate / raw_rate:.2f}x | "
            f"{m['peak_rss'] / 2**20:,.0f} MiB | {_mib_or_dash(m['child_peak_rss'])} | "
            f"{m['user']:.2f} + {m['system']:.2f} s |"
        )
    full = medians[(INGEST, args.count)]
    part = medians[(INGEST, args.count // 4)]
    ratio = full["messages"] / full["seconds"] / raw_rate
    flat = _both_peaks(full) / _both_peaks(part)
    ok = ratio >= GOAL_RATIO and flat <= GOAL_FLAT
    header = medians[(HEADER, args.count)]
    print(
        f"image check at the door / header check = {header['seconds'] / full['seconds']:.2f}x "
        f"the rate ({(full['seconds'] - header['seconds']) / args.count * 1e3:.2f} ms a message)"
    )
    each = ", ".join(f"{r:.2f}x" for r in spread)
    print(f"\ningest / raw, round by round: {each}; load average now {load_average()}")
    print(
        f"ingest / raw = {ratio:.2f}x (goal >= {GOAL_RATIO}x); peak RSS at {args.count:,} / "
        f"at {args.count // 4:,} messages = {flat:.2f}x (goal <= {GOAL_FLAT}x): "
        f"{'MEETS' if ok else 'MISSES'} the goals"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
