"""The asset pages a person opens, timed in Debian's Chromium on ``dagster-webserver``: from
``driver.get`` until the page shows what it exists to show (the partition's or the latest
materialisation's own values), not until the first spinner."""

from __future__ import annotations

import statistics
import time
from datetime import date, timedelta
from pathlib import Path

from azaion_assets_tests.browser import chromium, open_page, webserver


def pages(today: date, last_block: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Page -> (path, texts it shows once ready): today's arrivals and newest annotation block,
    yesterday's dataset and model (today's are formed tonight)."""
    last_day, formed = today.isoformat(), (today - timedelta(days=1)).isoformat()
    return {
        "annotations": (
            f"/assets/annotations?view=partitions&partition={last_block}",
            (f"\n{last_block}\n", "\nrange_first\n", "\nvalidated_names\n"),
        ),
        "daily_arrivals": (
            f"/assets/daily_arrivals?view=partitions&partition={last_day}",
            ("\nmessages\n", "\nvalidated\n", "ingest segments on"),
        ),
        "dataset": (
            f"/assets/dataset?view=partitions&partition={formed}",
            ("Latest materialization", "\nsource_snapshot\n"),
        ),
        "model": (
            f"/assets/model?view=partitions&partition={formed}",
            ("Latest materialization", "\ndiagnostic_val_mAP50-95\n"),
        ),
        "champion": ("/assets/champion?view=events", ("Materialized in run", "\npt_sha256\n")),
    }


def time_pages(
    home: Path, env: dict[str, str], folder: Path, wanted: dict, repeat: int = 3
) -> dict[str, tuple[float, float]]:
    """Each page's first load and the median of ``repeat`` loads after it, in seconds."""
    out: dict[str, tuple[float, float]] = {}
    with webserver(home, env, folder, timeout=300) as server, chromium() as driver:
        for name, (path, texts) in wanted.items():
            times = []
            for _ in range(1 + repeat):
                driver.get("about:blank")
                started = time.perf_counter()
                open_page(driver, server.url + path, *texts, timeout=120)
                times.append(time.perf_counter() - started)
            out[name] = (times[0], statistics.median(times[1:]))
    return out
