"""What arrived on one day: the ingest summaries of the partitions applied that day, summed.

The operator's question is "what arrived today", not "what was in offsets 96..113": this sums
the per-partition summaries that the ingest state already keeps (``IngestState``), by the day
each partition was first applied (UTC), so a re-run of a partition never counts it twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from azaion_assets.lib.ingest.ingest_state import IngestState
from azaion_assets.lib.labels.classes import MAX_BASE_ID, MODE_OFFSETS

_MODES = sorted(MODE_OFFSETS.items(), key=lambda item: item[1])


def weather_mode(slot: int) -> str:
    """The weather mode of a training slot (``Id``, ``Id + 20``, ``Id + 40``); slots past the
    modes are ``other``."""
    mode = slot // MAX_BASE_ID  # the modes sit MAX_BASE_ID slots apart
    return _MODES[mode][0] if mode < len(_MODES) else "other"


@dataclass
class DayTotals:
    """One day's arrivals; ``partitions`` are the annotation partitions it covers, in order."""

    day: date
    partitions: list[str] = field(default_factory=list)
    messages: int = 0
    bytes: int = 0
    validated: int = 0  # annotations brought into data/ (new, edited, or validated in bulk)
    quarantined: int = 0
    events: Counter[str] = field(default_factory=Counter)
    roles: Counter[str] = field(default_factory=Counter)
    boxes: Counter[int] = field(default_factory=Counter)  # class slot -> boxes
    quarantine_reasons: Counter[str] = field(default_factory=Counter)

    def boxes_by_mode(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for slot, count in self.boxes.items():
            out[weather_mode(slot)] += count
        return dict(out)


def validated_count(summary: dict) -> int:
    """Annotations a partition brought into data/: content written there by a validator, or
    moved there from data-seed/ by a bulk Validate (what the retraining policy counts)."""
    return int(summary["written"].get("data", 0)) + int(summary["moved"].get("to data", 0))


def day_bounds(day: date) -> tuple[str, str]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start.isoformat(), (start + timedelta(days=1)).isoformat()


def day_totals(state: IngestState, day: date) -> DayTotals:
    """The day's totals, summed by the state's database (as ``validated_count`` counts)."""
    bounds = day_bounds(day)

    def total(path: str) -> int:
        return state.total_between(*bounds, path)

    def counts(name: str) -> Counter[str]:
        return Counter(state.counts_between(*bounds, name))

    return DayTotals(
        day,
        partitions=state.applied_between(*bounds),
        messages=total("$.messages"),
        bytes=total("$.bytes"),
        validated=total("$.written.data") + total('$.moved."to data"'),
        quarantined=total("$.quarantined"),
        events=counts("events"),
        roles=counts("roles"),
        boxes=Counter({int(slot): n for slot, n in counts("boxes").items()}),
        quarantine_reasons=counts("quarantine_reasons"),
    )
