from datetime import date

from azaion_assets.lib.ingest.day_totals import day_totals, weather_mode
from azaion_assets.lib.ingest.ingest_state import IngestState, first_applied_at, state_file


def _summary(messages: int, *, boxes: dict, validated: int = 0, quarantined: int = 0) -> dict:
    return {
        "messages": messages,
        "bytes": 100 * messages,
        "events": {"Created": messages - quarantined},
        "roles": {"Validator": messages - quarantined},
        "boxes": {str(k): v for k, v in boxes.items()},
        "written": {"data": validated},
        "moved": {"to data": 1} if validated else {},
        "quarantined": quarantined,
        "quarantine_reasons": {"not JSON": quarantined} if quarantined else {},
    }


def test_a_day_sums_the_partitions_first_applied_that_day_only(tmp_path):
    assert first_applied_at(tmp_path) is None  # nothing ingested: and nothing created
    assert not state_file(tmp_path).exists()
    with IngestState(state_file(tmp_path)) as state:
        state.finish_partition(
            "000-009", 0, 9, _summary(10, boxes={1: 2}), "2026-12-01T23:59:59.999999+00:00"
        )
        state.finish_partition(
            "010-019",
            10,
            19,
            _summary(10, boxes={1: 3, 21: 4, 45: 5, 70: 1}, validated=6, quarantined=2),
            "2026-12-02T00:00:00+00:00",
        )
        state.finish_partition(
            "020-029", 20, 29, _summary(5, boxes={2: 1}, validated=1), "2026-12-02T18:00:00+00:00"
        )
        state.finish_partition(
            "030-039", 30, 39, _summary(7, boxes={}), "2026-12-03T00:00:00+00:00"
        )
        totals = day_totals(state, date(2026, 12, 2))
        empty = day_totals(state, date(2026, 11, 30))
    assert totals.partitions == ["010-019", "020-029"]  # in stream order, no neighbour's
    assert totals.messages == 15 and totals.bytes == 1500
    assert totals.validated == 6 + 1 + 1 + 1  # written to data/ plus moved there in bulk
    assert totals.quarantined == 2 and dict(totals.quarantine_reasons) == {"not JSON": 2}
    assert dict(totals.events) == {"Created": 13} and dict(totals.roles) == {"Validator": 13}
    assert totals.boxes_by_mode() == {"Norm": 4, "Wint": 4, "Night": 5, "other": 1}
    assert empty.partitions == [] and empty.messages == 0
    assert first_applied_at(tmp_path) == "2026-12-01T23:59:59.999999+00:00"


def test_weather_modes_follow_the_slot_offsets():
    assert [weather_mode(s) for s in (0, 19, 20, 39, 40, 59, 60)] == [
        "Norm",
        "Norm",
        "Wint",
        "Wint",
        "Night",
        "Night",
        "other",
    ]
