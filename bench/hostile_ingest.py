"""Benchmark: a partition with the hostile messages of issue 28, against the same partition
without them, through ``ingest_partition``.

Run with ``python -m bench.hostile_ingest [--repeat R] [--also CHECKOUT]``.

A throwaway broker gets two partitions of 60 messages: 50 frames of 100 KB (the issue's
52-message partition less its two floods), a 4096x4096 lossless WebP and PNG of 26-28 MB (the
costliest images accepted), and 8 more: in **hostile**, the issue's cases (two 32 MB PNGs of
2.7 million tiny chunks, a PNG with an 8.5 MB chunk before its pixels, a compressed-text bomb,
JPEG and PNG frames with EXIF orientation 6, a 31 MB media name, a frame named in Cyrillic
look-alikes); in **normal**, a benign frame of the same size for each (padded after its end
marker), so that the two partitions differ in what is hostile, not in bytes. Each ingest runs
in a fresh process, so its peaks are its own: the ingest's process (``VmHWM``), its stream
reader's and its image judge's (both children, read from ``/proc`` just before they end). Also
timed: each message's decode, the slowest named.

``--also CHECKOUT`` runs another checkout's ingest (a git worktree of the previous commit) on the
same partitions, alternated with this one: the A/B of the issue's fix.

Goals (issue 28): the slowest message within 1 s at the default budget; the ingest's peak on the
hostile partition at most 1.1x its peak on the normal one.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import asdict
from pathlib import Path

from azaion_assets.dev.localbroker import LocalBroker
from azaion_assets.dev.messages import Author, Message, annotation
from azaion_assets.lib.stream.client import probe_tail, publish
from azaion_assets.lib.stream.events import Role
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets.lib.stream.stream_connection import StreamTarget
from bench.stream_ingest import noisy_jpeg, peak_rss
from bench.timing import load_average

GOAL_SECONDS = 1.0  # the slowest message, at most
GOAL_MEMORY = 1.1  # the ingest's peak, hostile over normal, at most
FRAMES = 50
_TARGET_ENV = "AZAION_BENCH_STREAM"
VALIDATOR = Author(Role.VALIDATOR, "validator@azaion.local")
BOX = [(0, 0.5, 0.5, 0.2, 0.2)]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _saved(img, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


def padded(frame: bytes, size: int) -> bytes:
    """A benign image of ``size`` bytes: ``frame`` with bytes after its end marker (accepted,
    and stored whole, as a camera's trailer would be)."""
    return frame + bytes(max(0, size - len(frame)))


def large_images() -> list[tuple[str, bytes, str]]:
    """The costliest legitimate images: 4096x4096 (the pixel limit), lossless, 26-28 MB."""
    import numpy as np
    from PIL import Image

    texture = np.random.default_rng(0).integers(0, 8, (4096, 4096, 3), dtype=np.uint8) + 100
    large = Image.fromarray(texture)
    return [
        ("4096x4096 lossless WebP", _saved(large, "WEBP", lossless=True, method=0), ".webp"),
        ("4096x4096 PNG", _saved(large, "PNG", compress_level=1), ".png"),
    ]


def hostile_cases(frame: bytes) -> list[tuple[str, Message, Message]]:
    """The issue's cases, each a message, with a benign message of the same size for the normal
    partition: named for the report."""
    from PIL import Image

    png = _saved(Image.new("RGB", (640, 480), (40, 90, 30)), "PNG")
    flood = png[:33] + _chunk(b"prVt", b"") * (32_000_000 // 12) + png[33:]
    big_chunk = png[:33] + _chunk(b"iTXt", b"C\x00\x00\x00\x00\x00" + b"x" * 8_500_000) + png[33:]
    bomb = png[:33] + _chunk(b"zTXt", b"C\x00\x00" + zlib.compress(b"x" * 50_000_000)) + png[33:]
    turned = Image.Exif()
    turned[0x0112] = 6
    exif_jpeg = _saved(Image.new("RGB", (160, 128)), "JPEG", exif=turned)
    exif_png = _saved(Image.new("RGB", (160, 128)), "PNG", exif=turned)
    cases = [
        ("PNG flood 1", flood, ".png", None, "flood_1"),
        ("PNG flood 2", flood, ".png", None, "flood_2"),
        ("PNG with an 8.5 MB chunk", big_chunk, ".png", None, "big_chunk"),
        ("PNG text bomb", bomb, ".png", None, "text_bomb"),
        ("JPEG EXIF 6", exif_jpeg, ".jpg", None, "exif_jpeg"),
        ("PNG EXIF 6", exif_png, ".png", None, "exif_png"),
        ("31 MB media name", frame, ".jpg", "v" * (31 << 20), "long_media"),
        ("Cyrillic look-alike", frame, ".jpg", None, "\u0441ase_0000001"),
    ]
    out = []
    for label, image, ext, media, name in cases:
        bad = annotation(name, image, ext, BOX, VALIDATOR, media=media)
        twin = padded(frame, len(image) + len(media or ""))
        out.append(
            (label, bad, annotation(f"twin_{name.encode().hex()}", twin, ".jpg", BOX, VALIDATOR))
        )
    return out


def frames(prefix: str, images: list[bytes]) -> list[Message]:
    return [
        annotation(f"{prefix}_{i:07d}", images[i % len(images)], ".jpg", BOX, VALIDATOR)
        for i in range(FRAMES)
    ]


def fill(target: StreamTarget) -> dict[str, OffsetRange]:
    """Publish the normal partition, then the hostile one; their offset ranges. Both hold the
    same frames and the largest legitimate images; the normal one holds a benign message of the
    same size in place of each hostile one, so that the two differ only in what is hostile."""
    rng = random.Random(0)
    images = [noisy_jpeg(rng, 100_000) for _ in range(8)]
    cases = hostile_cases(images[0])
    large = large_images()
    spans = {}
    first = 0
    for kind in ("normal", "case"):
        batch = frames(kind, images)
        extra = [
            annotation(f"{kind}_{ext[1:]}", image, ext, BOX, VALIDATOR) for _, image, ext in large
        ]
        extra += [bad if kind == "case" else twin for _, bad, twin in cases]
        step = len(batch) // len(extra)
        for i, message in enumerate(extra):
            batch.insert(1 + i * (step + 1), message)
        asyncio.run(publish(target, iter(batch), batch_size=4))
        last = asyncio.run(probe_tail(target))
        assert last is not None
        spans["hostile" if kind == "case" else kind] = OffsetRange(first, last)
        first = last + 1
    return spans


def child(first: int, last: int, workdir: Path) -> dict:
    """One ingest of ``first..last``, in this fresh process, with each decode timed."""
    from azaion_assets.lib.ingest import apply_events
    from azaion_assets.lib.ingest.partition_run import ingest_partition
    from azaion_assets.lib.stream.contract import DEFAULT_MAX_MESSAGE_BYTES
    from azaion_assets_tests.treeview import make_tree

    slowest = [0.0, ""]
    decode = apply_events.decode_message

    def timed(*args, **kwargs):
        started = time.perf_counter()
        decoded = decode(*args, **kwargs)
        took = time.perf_counter() - started
        if took > slowest[0]:
            event = decoded.event
            slowest[:] = [took, getattr(event, "reason", getattr(event, "name", ""))[:90]]
        return decoded

    apply_events.decode_message = timed
    children = _watch_children()
    tree = make_tree(workdir / "tree")
    started = time.perf_counter()
    result = ingest_partition(
        _target(), tree, OffsetRange(first, last).key, DEFAULT_MAX_MESSAGE_BYTES, idle_timeout=60
    )
    return {
        "seconds": time.perf_counter() - started,
        "messages": result.summary["messages"],
        "quarantined": result.summary["quarantined"],
        "reasons": result.summary["quarantine_reasons"],
        "slowest_s": slowest[0],
        "slowest": slowest[1],
        "peak_rss": peak_rss(),
        **children,
    }


def _watch_children() -> dict[str, int]:
    """The peak resident sets of the stream reader and the image judge, read from /proc as
    each is closed (filled in place; 0 if none ran). Older checkouts have no judge."""
    peaks = {"reader_peak_rss": 0, "judge_peak_rss": 0}
    from azaion_assets.lib.proc import child as proc_child

    close = proc_child.Child.close

    def closing(self, kill: bool) -> None:
        key = "judge_peak_rss" if self._name == "the image judge" else "reader_peak_rss"
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
            hwm = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
            peaks[key] = max(peaks[key], int(hwm.split()[1]) * 1024)
        except (OSError, StopIteration):
            pass
        close(self, kill)

    proc_child.Child.close = closing  # type: ignore[method-assign]
    return peaks


def _target() -> StreamTarget:
    return StreamTarget(**json.loads(os.environ[_TARGET_ENV]))


def spawn(span: OffsetRange, target: StreamTarget, workdir: Path, code: Path | None) -> dict:
    scratch = Path(tempfile.mkdtemp(dir=workdir))
    args = ["--child", "--first", str(span.first), "--last", str(span.last)]
    env = {**os.environ, _TARGET_ENV: json.dumps(asdict(target))}
    if code:
        env["PYTHONPATH"] = str(code)  # its package and its bench.stream_ingest
    out = subprocess.run(  # by its path: an older checkout's bench/ has no such module
        [sys.executable, __file__, *args, "--workdir", str(scratch)],
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _mib(size: float) -> str:
    return f"{size / 2**20:,.0f} MiB" if size else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--also", type=Path, action="append", default=[], metavar="CHECKOUT")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--last", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.first, args.last, args.workdir)))
        return 0
    codes: list[tuple[str, Path | None]] = [("this checkout", None)]
    codes += [(f"at {_revision(o)}", o.resolve()) for o in args.also]
    runs: dict[tuple[str, str], list[dict]] = {}
    with (
        tempfile.TemporaryDirectory(dir=args.workdir) as tmp,
        LocalBroker(base=Path(tmp) / "broker") as broker,
    ):
        target = broker.target("bench-hostile")
        spans = fill(target)
        for i in range(args.repeat):
            for label, code in codes:
                for kind, span in spans.items():
                    got = spawn(span, target, Path(tmp), code)
                    runs.setdefault((label, kind), []).append(got)
                    print(
                        f"  run {i + 1}/{args.repeat} {label:<16} {kind:<8} "
                        f"{got['seconds']:6.2f}s  slowest {got['slowest_s']:.2f}s  "
                        f"peak {_mib(got['peak_rss'])} (reader {_mib(got['reader_peak_rss'])}, "
                        f"judge {_mib(got['judge_peak_rss'])})  load {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
    return report(runs, codes)


def report(runs: dict[tuple[str, str], list[dict]], codes: list) -> int:
    fields = ("seconds", "slowest_s", "peak_rss", "reader_peak_rss", "judge_peak_rss")
    med = {k: {f: statistics.median(r[f] for r in v) for f in fields} for k, v in runs.items()}
    print("\n| ingest | partition | seconds | slowest message | ingest peak RSS | reader | judge |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (label, kind), m in med.items():
        slowest = runs[(label, kind)][0]["slowest"]
        print(
            f"| {label} | {kind} | {m['seconds']:.2f} | {m['slowest_s']:.2f} s ({slowest}) | "
            f"{_mib(m['peak_rss'])} | {_mib(m['reader_peak_rss'])} | "
            f"{_mib(m['judge_peak_rss'])} |"
        )
    ours = med[("this checkout", "hostile")]
    normal = med[("this checkout", "normal")]
    memory = ours["peak_rss"] / normal["peak_rss"]
    with_children = (ours["peak_rss"] + ours["reader_peak_rss"] + ours["judge_peak_rss"]) / (
        normal["peak_rss"] + normal["reader_peak_rss"] + normal["judge_peak_rss"]
    )
    print(f"\nquarantined (hostile): {runs[('this checkout', 'hostile')][0]['reasons']}")
    print(
        f"slowest message {ours['slowest_s']:.2f} s (goal <= {GOAL_SECONDS} s); the ingest "
        f"process's peak, hostile / normal = {memory:.2f}x (goal <= {GOAL_MEMORY}x); with its "
        f"reader and judge processes = {with_children:.2f}x; load average {load_average()}"
    )
    ok = ours["slowest_s"] <= GOAL_SECONDS and memory <= GOAL_MEMORY
    print("MEETS the goals" if ok else "MISSES a goal")
    return 0 if ok else 1


def _revision(checkout: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip() or checkout.name


if __name__ == "__main__":
    raise SystemExit(main())
