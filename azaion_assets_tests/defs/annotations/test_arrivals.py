"""daily_arrivals: each ingest run leaves today's totals; the asset rebuilds any day the same."""

import asyncio
import base64
import re
import time
from datetime import UTC, datetime

import cv2
import numpy as np
from dagster import AssetKey, materialize

from azaion_assets.defs import pictures as pictures_module
from azaion_assets.defs.annotations.annotations import annotations
from azaion_assets.defs.partitions import ANNOTATION_BATCHES
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.dev.messages import Author, annotation, bulk, synthetic
from azaion_assets.dev.synthetic import samples
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


def _images(markdown: str) -> list[tuple[str, np.ndarray]]:
    """Each picture's title and decoded image."""
    found = re.findall(r"!\[([^\]]*)\]\(data:image/jpeg;base64,([A-Za-z0-9+/=]+)\)", markdown)
    out = []
    for title, data in found:
        image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[1] > 0
        out.append((title, image))
    return out


def test_the_days_pictures_are_drawn_at_most_hourly_by_the_ingest_and_on_request(
    stream_env, instance, monkeypatch
):
    tail = _ingest(instance, stream_env, synthetic(3, VALIDATOR, prefix="v", width=64), 0)
    first = _arrivals(instance)
    (sheet,) = _images(first["pictures"])
    assert sheet[0] == f"the newest 3 annotations of {TODAY}"
    drawn_by = first["pictures_run"]
    (sample,) = samples(1, seed=3, prefix="bad", width=64)
    refused = annotation("bad_0000", sample.image, ".jpg", [(200, 0.5, 0.5, 0.2, 0.2)], VALIDATOR)
    tail = _ingest(
        instance, stream_env, [refused, (b"\x93garbage", {STATUS_PROPERTY: 10})], tail + 1
    )
    later = _arrivals(instance)  # a minute later: the figures move, the pictures wait
    assert later["quarantined"] == 2 and "data:image" not in later["pictures"]
    assert "drawn at" in later["pictures"] and f"by run `{drawn_by}`" in later["pictures"]
    assert later["pictures_run"] == drawn_by
    assert later["pictures_drawn_at"] == first["pictures_drawn_at"]

    hour_later = time.time() + 3600
    with monkeypatch.context() as clock:
        clock.setattr(pictures_module.time, "time", lambda: hour_later)
        _ingest(instance, stream_env, synthetic(1, VALIDATOR, prefix="w", width=64), tail + 1)
    due = _arrivals(instance)
    assert due["pictures_run"] != drawn_by and due["pictures_drawn_at"] == hour_later
    titles = [title for title, _ in _images(due["pictures"])]
    assert titles[0] == f"the newest 4 annotations of {TODAY}"
    (quarantined,) = titles[1:]  # the garbage has no image to show
    assert quarantined.startswith("quarantined, offset ") and "(bad_0000)" in quarantined
    assert "200" in quarantined  # its reason names the class it refused

    rebuilt = materialize(
        [daily_arrivals], instance=instance, partition_key=TODAY, resources=RESOURCES
    )  # the asset's own step draws at once
    assert [t for t, _ in _images(_arrivals(instance)["pictures"])] == titles
    assert _arrivals(instance)["pictures_run"] == rebuilt.run_id


def test_a_day_without_arrivals_says_so(stream_env, instance):
    result = materialize(
        [daily_arrivals], instance=instance, partition_key="2026-01-02", resources=RESOURCES
    )
    assert result.success
    event = instance.get_latest_materialization_event(AssetKey("daily_arrivals"))
    meta = event.asset_materialization.metadata
    assert meta["messages"].value == 0
    assert meta["summary"].value == "Nothing arrived on 2026-01-02."
