"""Timing shared by the benchmarks: medians of repeated runs, and the load beside them."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    """The median wall time of ``repeat`` calls of ``run``."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def load_average() -> str:
    """1/5/15-minute load: other work on the same cores skews every figure."""
    return "/".join(f"{x:.2f}" for x in os.getloadavg())
