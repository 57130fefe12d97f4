"""Benchmark: today's arrivals, summed at the end of every ingest run (``daily_arrivals``).

Run with ``python -m bench.day_totals [--partitions N] [--days D] [--repeat R]``.

The figure an ingest run pays once per run at the end of a busy day: a day of N partitions (one
per 5 s sensor tick by default, 17,280) behind D days of history, each with a summary as an
ingest run writes it. ``day_totals`` sums them in SQLite on the ``applied_at`` index; the
baseline is the plain way, parsing each of the day's summaries in Python and adding them up.
Both run on the same database in the same process, alternating; the ratio is what to read.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from azaion_assets.lib.ingest.day_totals import day_bounds, day_totals, validated_count
from azaion_assets.lib.ingest.ingest_state import IngestState, state_file
from bench.timing import load_average, median_seconds

DAY = date(2026, 12, 3)
SUMMARY = {  # a 50-message partition, as IngestSummary.to_json writes it
    "messages": 50,
    "bytes": 5_000_000,
    "events": {"Created": 40, "Edited": 5, "Validated": 5},
    "roles": {"Validator": 40, "Operator": 5, "(bulk, role not sent)": 5},
    "boxes": {str(slot): 3 for slot in range(30)},
    "written": {"data": 40, "seed": 5},
    "moved": {"to data": 5},
    "quarantined": 1,
    "quarantine_reasons": {"undecodable msgpack": 1},
    "unknown_sample": [f"name_{i:06d}" for i in range(20)],
    "notes": {},
}


def python_sums(state: IngestState, day: date) -> Counter[str]:
    """The baseline: every summary of the day parsed and added up in Python."""
    out: Counter[str] = Counter()
    rows = state._db.execute(
        "SELECT summary FROM partitions WHERE applied_at >= ? AND applied_at < ?",
        day_bounds(day),
    )
    for (text,) in rows:
        s = json.loads(text)
        out.update({"messages": s["messages"], "validated": validated_count(s)})
        for name in ("events", "roles", "boxes", "quarantine_reasons"):
            out.update({f"{name}.{k}": v for k, v in s[name].items()})
    return out


def populate(state: IngestState, partitions: int, days: int) -> None:
    text = json.dumps(SUMMARY)
    start = datetime.combine(DAY - timedelta(days=days), datetime.min.time(), tzinfo=UTC)
    step = 86400 / partitions
    rows = (
        (f"{i:012d}-{i:012d}", i, i, text, (start + timedelta(seconds=i * step)).isoformat())
        for i in range(partitions * (days + 1))
    )
    state._db.executemany("INSERT INTO partitions VALUES (?, ?, ?, ?, ?)", rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--partitions", type=int, default=17_280)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, IngestState(state_file(Path(tmp))) as state:
        populate(state, args.partitions, args.days)
        totals = day_totals(state, DAY)
        baseline = python_sums(state, DAY)
        assert totals.messages == baseline["messages"] == 50 * args.partitions
        assert totals.validated == baseline["validated"]
        assert len(totals.partitions) == args.partitions
        sql = median_seconds(lambda: day_totals(state, DAY), args.repeat)
        plain = median_seconds(lambda: python_sums(state, DAY), args.repeat)
    print(f"{args.partitions} partitions today, {args.days} days before; load {load_average()}")
    print(f"day_totals (SQLite) {sql:.3f} s; Python parse {plain:.3f} s; ratio {sql / plain:.2f}x")


if __name__ == "__main__":
    main()
