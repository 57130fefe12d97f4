"""``bench.year``'s figures, as Markdown tables for bench/README.md, and whether the goals hold."""

from __future__ import annotations

from bench.timing import load_average

GB = 1e9


def _gb(value: float) -> str:
    return f"{value / GB:,.1f}"


def report(args, rhythm, cost, year, results, forming, forming_count, goals) -> int:
    ok = True
    print(f"\n## A compressed year: {args.days} days at {args.annotations:,} annotations a day\n")
    print(
        f"Rhythm: {rhythm.ingest_runs} ingest runs a working day (measured), "
        f"{-(-args.annotations // 1000)} partitions a day, {rhythm.monitor_runs} scores, one "
        f"retraining, a release every {rhythm.promote_every_days} days, one housekeeping run."
    )
    if cost["runs"]:
        per_run = cost["instance_bytes"] / cost["runs"]
        print(
            f"Trickle sample: {cost['runs']} ingest runs in {cost['seconds']:.0f} s; the SQLite "
            f"instance grew {per_run / 1e3:.0f} kB a run, of which the run's own event shard "
            f"{cost['shard_bytes'] / 1e3:.0f} kB."
        )
    ok &= _instances(results, cost, args.days)
    ok &= _ticks(results, goals["tick"])
    ok &= _pages(results, goals["page"])
    _disk(year, results.get("housekeeping"))
    base, formed = forming["cp -al"], forming["form_dataset"]
    ratio = formed / base
    ok &= ratio <= goals["forming"]
    print(f"\n### Forming one more dataset on a year's annotations (1/{args.forming_scale})\n")
    print(f"{forming_count:,} annotations: cp -al {base:.2f} s, form_dataset {formed:.2f} s, "
          f"**{ratio:.2f}x** (goal <= {goals['forming']}x)")  # fmt: skip
    print(f"\ngoals: {'met' if ok else 'MISSED'}; load average at the end {load_average()}")
    return 0 if ok else 1


def _backends(results: dict):
    return [(name, r) for name, r in results.items() if name != "housekeeping"]


TICK_TABLES = ("schedules.db", "job_ticks")


def _instances(results: dict, cost: dict, days: int) -> bool:
    print("\n### The instance after a year\n")
    print(
        "Runs and events grow with the days; ticks are the shipped retention's steady state "
        "(skipped ones a week, the rest a quarter), the same from day 90 on.\n"
    )
    print("| backend | runs | events | partitions | runs and events (GB) | per day (MB) "
          "| ticks kept | ticks (GB) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for backend, r in _backends(results):
        fill = r["fills"]["year"]
        ticks = sum(v for k, v in fill["bytes"].items() if k in TICK_TABLES)
        grown = sum(v for k, v in fill["bytes"].items() if k not in TICK_TABLES)
        if backend == "sqlite" and cost["shard_bytes"]:
            grown += cost["shard_bytes"] * fill["runs"]  # the run shards, not written here
        print(f"| {backend} | {fill['runs']:,} | {fill['events']:,} | {fill['partitions']:,} | "
              f"{_gb(grown)} | {grown / days / 1e6:,.1f} | {fill.get('ticks', 0):,} | "
              f"{_gb(ticks)} |")  # fmt: skip
        largest = sorted(fill["bytes"].items(), key=lambda kv: -kv[1])[:4]
        print(f"|  | largest: {', '.join(f'{k} {_gb(v)} GB' for k, v in largest)} |||||||")
    return True


def _table(title: str, columns: str, align: str, rows: list[str]) -> None:
    print(f"\n### {title}\n")
    print(f"| {columns} |")
    print(f"|{align}|")
    for row in rows:
        print(f"| {row} |")


def _ticks(results: dict, goal: float) -> bool:
    ok, rows = True, []
    for backend, r in _backends(results):
        for sensor, s in r["ticks"]["seconds"].items():
            said = r["ticks"]["said"][f"{sensor}/year"].replace("|", "/")
            ok &= s["year"] <= goal or backend != "postgres"  # the goal: PostgreSQL
            rows.append(f"{backend} | {sensor} | {s['week']:.2f} | {s['year']:.2f} | "
                        f"{s['year'] / s['week']:.2f}x | {said}")  # fmt: skip
    _table(f"Sensor ticks (median of 3; goal <= {goal} s on a year)",
           "backend | sensor | a week (s) | a year (s) | ratio | the year's tick said",
           "---|---|---:|---:|---:|---", rows)  # fmt: skip
    return ok


def _pages(results: dict, goal: float) -> bool:
    ok, rows = True, []
    for backend, r in _backends(results):
        for page, (first, then) in r["ui"]["year"].items():
            week_first, week_then = r["ui"]["week"][page]
            ok &= then <= goal or backend != "postgres"
            rows.append(f"{backend} | {page} | {week_first:.1f}, {week_then:.1f} | {first:.1f}, "
                        f"{then:.1f} | {then / week_then:.2f}x")  # fmt: skip
    _table(f"Asset pages in Chromium (ready: the page shows its values; goal <= {goal} s)",
           "backend | page | a week: first, then (s) | a year: first, then (s) | ratio",
           "---|---|---:|---:|---:", rows)  # fmt: skip
    return ok


KINDS = ("data", "datasets", "weights and ONNX", "checkpoints", "release parts", "records",
         "quarantine")  # fmt: skip


def _disk(year, housekeeping: dict | None) -> None:
    print("\n### Disk by kind (GB; data at the stated image size, see the text)\n")
    print("| day | " + " | ".join(KINDS) + " | derived | derived without housekeeping |")
    print("|---:|" + "---:|" * (len(KINDS) + 2))
    for day in sorted(year.by_day):
        d, w = year.by_day[day], year.without[day]
        derived = sum(v for k, v in d.items() if k != "data")
        without = sum(v for k, v in w.items() if k != "data")
        cells = " | ".join(_gb(d.get(k, 0)) for k in KINDS)
        print(f"| {day} | {cells} | {_gb(derived)} | {_gb(without)} |")
    if housekeeping:
        print(f"\nOne housekeeping run on the year ({housekeeping['backend']} instance): "
              f"{housekeeping['seconds']:.1f} s")  # fmt: skip
        for label in ("before", "after"):
            d = housekeeping[label]
            cells = ", ".join(f"{k} {_gb(d.get(k, 0))}" for k in KINDS if k != "data")
            print(f"- {label}: {cells}")
        removed = housekeeping["report"].get("removed")
        print(f"- removed: {removed}")
    forming, nightly = year.seconds.get("forming", 0), year.seconds.get("housekeeping", 0)
    print(f"\nforming a dataset every day took {forming:.0f} s in all at 1/{year.scale}; "
          f"housekeeping's nightly plans {nightly:.0f} s")  # fmt: skip
