"""daily_arrivals: each ingest run leaves today's totals; the asset rebuilds any day the same."""

import asyncio
from datetime import UTC, datetime

from dagster import AssetKey, materialize

from azaion_assets.defs.annotations.annotations import annotations
from azaion_assets.defs.partitions import ANNOTATION_BATCHES
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.dev.messages import Author, bulk, synthetic
from azaion_assets.lib.stream.client import probe_tail, publish
from azaion_assets.lib.stream.events import STATUS_PROPERTY, Role, Status
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets_tests.dated import daily_arrivals

RESOURCES = {"azaion_settings": AzaionSettingsResource()}
VALIDATOR = Author(Role.VALIDATOR, "val@azaion.com")
OPERATOR = Author(Role.OPERATOR, "op@azaion.com")
TODAY = datetime.now(UTC).date().isoformat()


def _ingest(instance, stream, messages, first: int) -> int:
    asyncio.run(publish(stream, list(messages)))
    tail = asyncio.run(probe_tail(stream))
    assert tail is not None
    key = OffsetRange(first, tail).key
    instance.add_dynamic_partitions(ANNOTATION_BATCHES, [key])
    result = materialize([annotations], instance=instance, partition_key=key, resources=RESOURCES)
    assert result.success
    return tail


def _arrivals(instance) -> dict:
    event = instance.get_latest_materialization_event(AssetKey("daily_arrivals"))
    assert event is not None and event.asset_materialization is not None
    assert event.asset_materialization.partition == TODAY
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def _rows(table) -> dict:
    return {r.data["what"]: r.data["count"] for r in table.records}


def test_each_ingest_run_updates_todays_totals_across_partitions(stream_env, instance):
    tail = _ingest(instance, stream_env, synthetic(3, VALIDATOR, prefix="v", width=32), 0)
    first = _arrivals(instance)
    newest = {  # the totals come after what they sum, so the UI does not mark them unsynced
        key: instance.fetch_materializations(AssetKey(key), limit=1).records[0].storage_id
        for key in ("annotations", "daily_arrivals")
    }
    assert newest["daily_arrivals"] > newest["annotations"]
    assert first["messages"] == 3 and first["ingest_segments"] == 1
    assert first["validated"] == 3 and first["quarantined"] == 0
    second_batch = [
        *synthetic(2, OPERATOR, prefix="o", width=32),
        (b"\x93garbage", {STATUS_PROPERTY: 10}),
        bulk(["o_0000_000000"], Status.VALIDATED, VALIDATOR),
    ]
    _ingest(instance, stream_env, second_batch, tail + 1)
    meta = _arrivals(instance)
    assert meta["messages"] == 7 and meta["ingest_segments"] == 2
    assert meta["validated"] == 4  # three by a validator, one validated in bulk
    assert meta["quarantined"] == 1 and sum(_rows(meta["quarantine_reasons"]).values()) == 1
    assert _rows(meta["events"])["Created"] == 5
    assert _rows(meta["roles"])["Operator"] == 2 and _rows(meta["roles"])["Validator"] >= 3
    by_mode = _rows(meta["boxes_by_weather_mode"])
    assert sum(by_mode.values()) == meta["boxes"] == sum(_rows(meta["boxes_by_class"]).values())
    assert "**7 messages** in 2 ingest segments" in meta["summary"]
    assert "**1 quarantined**" in meta["summary"]

    rebuilt = materialize(
        [daily_arrivals], instance=instance, partition_key=TODAY, resources=RESOURCES
    )
    assert rebuilt.success
    again = _arrivals(instance)
    for key in ("messages", "validated", "quarantined", "boxes", "ingest_segments"):
        assert again[key] == meta[key]


def test_a_day_without_arrivals_says_so(stream_env, instance):
    result = materialize(
        [daily_arrivals], instance=instance, partition_key="2026-01-02", resources=RESOURCES
    )
    assert result.success
    event = instance.get_latest_materialization_event(AssetKey("daily_arrivals"))
    meta = event.asset_materialization.metadata
    assert meta["messages"].value == 0
    assert meta["summary"].value == "Nothing arrived on 2026-01-02."
