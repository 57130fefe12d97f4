"""The annotations asset: stream partitions applied to the data tree, on a real broker and
a real Dagster instance."""

import asyncio
import json
from typing import Any

import pytest
from dagster import AssetKey, materialize

from azaion_assets.defs.annotations.annotations import annotations
from azaion_assets.defs.instance_facts import landed_through
from azaion_assets.defs.partitions import ANNOTATION_BATCHES
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.dev.messages import Author, annotation, bulk, synthetic
from azaion_assets.dev.synthetic import samples
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.sources import load_settings
from azaion_assets.lib.ingest.apply_events import quarantine_dir, state_path
from azaion_assets.lib.ingest.ingest_state import IngestState
from azaion_assets.lib.ingest.summary import BULK_ROLE
from azaion_assets.lib.stream.client import probe_tail, publish
from azaion_assets.lib.stream.events import STATUS_PROPERTY, Role, Status
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets_tests.conftest import raw_producer
from azaion_assets_tests.treeview import places, snapshot

RESOURCES = {"azaion_settings": AzaionSettingsResource()}
VALIDATOR = Author(Role.VALIDATOR, "val@azaion.com")
OPERATOR = Author(Role.OPERATOR, "op@azaion.com")


def _send(stream, messages) -> int:
    asyncio.run(publish(stream, list(messages)))
    tail = asyncio.run(probe_tail(stream))
    assert tail is not None
    return tail


def _run(instance, key: str):
    instance.add_dynamic_partitions(ANNOTATION_BATCHES, [key])
    result = materialize([annotations], instance=instance, partition_key=key, resources=RESOURCES)
    assert result.success
    event = instance.get_latest_materialization_event(AssetKey("annotations"))
    meta = event.asset_materialization.metadata
    return {k: getattr(v, "value", v) for k, v in meta.items()}


def _tree() -> DataTree:
    return DataTree.from_settings(load_settings())


def test_a_partition_applies_its_events_with_metadata(stream_env, instance):
    tail = _send(
        stream_env,
        [
            *synthetic(3, VALIDATOR, prefix="val", width=32, height=32),
            *synthetic(2, OPERATOR, prefix="op", width=32, height=32),
            (b"\x93garbage", {STATUS_PROPERTY: 10}),
            bulk(["op_0000_000000"], Status.VALIDATED, VALIDATOR),
            bulk(["val_0000_000001", "nobody"], Status.DELETED, VALIDATOR),
        ],
    )
    meta = _run(instance, OffsetRange(0, tail).key)
    tree = _tree()
    assert list(places(tree, "val_0000_000000")) == ["data"]
    assert list(places(tree, "val_0000_000001")) == ["deleted"]
    assert list(places(tree, "op_0000_000000")) == ["data"]  # validated in bulk
    assert list(places(tree, "op_0000_000001")) == ["seed"]
    assert meta["messages"] == 8 and meta["quarantined"] == 1 and meta["unknown_names"] == 1
    assert meta["range_first"] == 0 and meta["range_last"] == tail
    assert meta["last_offset"] == tail and meta["bytes"] > 0
    events = {r.data["what"]: r.data["count"] for r in meta["events"].records}
    assert events == {"Created": 5, "Deleted": 1, "Validated": 1}  # the quarantined one apart
    roles = {r.data["what"]: r.data["count"] for r in meta["roles"].records}
    assert roles == {BULK_ROLE: 2, "Operator": 2, "Validator": 3}  # as many as the events
    classes = {r.data["what"] for r in meta["boxes_by_class"].records}
    assert classes and all("Class-" not in c for c in classes)
    assert meta["gap"] == "none" and not meta["reused_earlier_run"]
    assert len(list(quarantine_dir(tree).glob("*.bin"))) == 1
    # Validated arrivals: three created by a validator (val_1 deleted later, still counted)
    # and op_0 validated in bulk; the operator's op_1 waits in data-seed/.
    assert meta["validated"] == 4, meta["written"]
    # As distinct names, what is in data/ now: val_1 left again.
    assert meta["validated_names"] == ["op_0000_000000", "val_0000_000000", "val_0000_000002"]
    assert meta["left_data_names"] == ["val_0000_000001"]


def test_rerunning_a_partition_changes_nothing(stream_env, instance):
    tail = _send(stream_env, synthetic(4, OPERATOR, width=32, height=32))
    key = OffsetRange(0, tail).key
    _run(instance, key)
    before = snapshot(_tree())
    again = _run(instance, key)
    assert snapshot(_tree()) == before
    assert again["reused_earlier_run"] and again["messages"] == 4
    assert again["validated"] == 0  # counted once, by the run that applied it
    assert again["validated_names"] == [] and again["left_data_names"] == []


def test_partitions_materialised_out_of_order_still_let_later_events_win(stream_env, instance):
    first_tail = _send(stream_env, synthetic(2, OPERATOR, width=32, height=32))
    second_tail = _send(stream_env, [bulk(["synthetic_0000_000000"], Status.DELETED, VALIDATOR)])
    delete = _run(instance, OffsetRange(first_tail + 1, second_tail).key)  # the Delete first
    create = _run(instance, OffsetRange(0, first_tail).key)  # then the Create it deletes
    assert list(places(_tree(), "synthetic_0000_000000")) == ["deleted"]
    assert list(places(_tree(), "synthetic_0000_000001")) == ["seed"]
    # The Delete found no annotation when it ran; the Create's partition says it now has one.
    assert delete["unknown_names"] == 1 and create["unknown_resolved"] == 1
    with IngestState(state_path(_tree())) as state:
        assert state.totals()["unknown_names"] == 0


def test_a_malformed_partition_key_fails_without_retrying(stream_env, instance):
    instance.add_dynamic_partitions(ANNOTATION_BATCHES, ["not-a-range"])
    result = materialize(
        [annotations],
        instance=instance,
        partition_key="not-a-range",
        resources=RESOURCES,
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("annotations")
    assert failure is not None and "not an offset-range partition key" in str(failure.error)


def test_the_limits_set_in_the_settings_hold_from_the_stream_to_the_tree(
    stream_env, instance, monkeypatch
):
    """STREAM_MAX_* as an operator sets them, through the settings, the asset and the reader
    process: each message over a limit quarantined with its reason, the rest applied."""
    monkeypatch.setenv("STREAM_MAX_IMAGE_PIXELS", str(40 * 40))
    monkeypatch.setenv("STREAM_MAX_BOXES", "2")
    monkeypatch.setenv("STREAM_MAX_BULK_NAMES", "2")
    small = next(samples(1, prefix="small", width=32, height=32))
    large = next(samples(1, prefix="large", width=64, height=48))
    box = (0, 0.5, 0.5, 0.2, 0.2)
    tail = _send(
        stream_env,
        [
            annotation(small.name, small.image, ".jpg", [box, box], VALIDATOR),
            annotation(large.name, large.image, ".jpg", [box], VALIDATOR),
            annotation("crowded", small.image, ".jpg", [box] * 3, VALIDATOR),
            annotation("cut", small.image[:-2], ".jpg", [box], VALIDATOR),
            bulk([small.name, "a", "b"], Status.DELETED, VALIDATOR),
        ],
    )
    meta = _run(instance, OffsetRange(0, tail).key)
    tree = _tree()
    assert list(places(tree, small.name)) == ["data"]  # the bulk of three names never applied
    assert not any(places(tree, name) for name in (large.name, "crowded", "cut"))
    assert meta["quarantined"] == 4
    reasons = meta["quarantine_reasons"]
    assert set(reasons) == {
        "image over STREAM_MAX_IMAGE_PIXELS",
        "too many boxes",
        "image truncated or corrupt",
        "too many names",
    }, reasons
    records = [json.loads(p.read_text()) for p in quarantine_dir(tree).glob("*.json")]
    assert any(r["reason"].startswith("image over STREAM_MAX_IMAGE_PIXELS: 64x48") for r in records)


def test_retention_gap_is_reported_and_the_rest_applied(truncated_stream, instance):
    """A stream whose old segments were removed: the run reports the gap and moves on."""
    head, tail = truncated_stream
    meta = _run(instance, OffsetRange(0, tail).key)
    assert meta["gap"] == f"offsets 0..{head - 1} removed by retention before read"
    assert meta["first_offset"] == head and meta["last_offset"] == tail


@pytest.mark.parametrize("role", [Role.ADMIN])
def test_the_author_role_is_counted(stream_env, instance, role):
    tail = _send(stream_env, synthetic(1, Author(role), width=32, height=32))
    meta = _run(instance, OffsetRange(0, tail).key)
    assert {r.data["what"] for r in meta["roles"].records} == {"Admin"}


def test_a_frame_that_is_not_amqp_is_quarantined_and_its_chunk_still_applied(stream_env, instance):
    """rstream drops the rest of a chunk when its decoder raises; ours must not."""
    from rstream import AMQPMessage

    good = list(synthetic(10, VALIDATOR, width=32, height=32))

    def _amqp(body: bytes, properties: dict) -> AMQPMessage:
        props: dict[str | bytes, Any] = dict(properties)
        return AMQPMessage(body=body, application_properties=props)

    async def send() -> None:
        async with raw_producer(stream_env) as producer:
            await producer.create_stream(stream_env.stream, exists_ok=True)
            batch: list = [_amqp(b, p) for b, p in good[:3]]
            batch.append(b"\x00")  # raw bytes, not an AMQP 1.0 message: one chunk with the rest
            batch += [_amqp(b, p) for b, p in good[3:]]
            await producer.send_batch(stream_env.stream, batch)

    asyncio.run(send())
    tail = asyncio.run(probe_tail(stream_env))
    assert tail is not None
    meta = _run(instance, OffsetRange(0, tail).key)
    assert meta["messages"] == 11 and meta["quarantined"] == 1
    assert len(list(_tree().data.images.iterdir())) == 10
    reasons = meta["quarantine_reasons"]
    assert any("undecodable AMQP" in r for r in reasons), reasons


def _ingest_job(instance, keys: list[str], offsets: OffsetRange | None = None):
    """``ingest_job`` as the stream sensor requests it: ``offsets`` (default: the partitions'
    whole span) applied to ``keys``."""
    from dagster import Definitions

    from azaion_assets.defs.annotations.ingest_job import INGEST_JOB, ingest_job, ingest_request

    job = Definitions(assets=[annotations], jobs=[ingest_job], resources=RESOURCES)
    first, last = OffsetRange.parse(keys[0]), OffsetRange.parse(keys[-1])
    request = ingest_request(keys, offsets or OffsetRange(first.first, last.last))
    tags = dict(request.tags)
    if request.partition_key:
        tags["dagster/partition"] = request.partition_key
    return job.resolve_job_def(INGEST_JOB).execute_in_process(
        instance=instance, tags=tags, raise_on_error=False
    )


def _materialisations(instance) -> dict[str, dict[str, Any]]:
    from dagster import AssetRecordsFilter

    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("annotations")), limit=1000
    ).records
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        m = record.asset_materialization
        assert m is not None and m.partition is not None and m.partition not in out
        out[m.partition] = {k: getattr(v, "value", v) for k, v in m.metadata.items()}
    return out


def test_a_range_run_materialises_each_partition_with_its_own_metadata(stream_env, instance):
    """One run over a backlog of four partitions, one of which an interrupted earlier run
    applied (and never materialised): each gets its own materialisation and figures, and the
    validated annotations of each are counted exactly once."""
    from azaion_assets.lib.ingest.partition_run import ingest_partition
    from azaion_assets.lib.stream.stream_connection import StreamTarget

    tails = [
        _send(stream_env, synthetic(n, VALIDATOR, seed=n, prefix=f"p{n}", width=32, height=32))
        for n in (3, 2, 4, 1)
    ]
    spans = [OffsetRange(a + 1, b) for a, b in zip([-1, *tails], tails, strict=False)]
    keys = [s.key for s in spans]
    instance.add_dynamic_partitions(ANNOTATION_BATCHES, keys)
    settings = load_settings()
    ingest_partition(StreamTarget.from_settings(settings), _tree(), keys[1], 1 << 20)

    result = _ingest_job(instance, keys)
    assert result.success
    landed = _materialisations(instance)
    assert sorted(landed) == keys  # one each, no more
    for span, n, key in zip(spans, (3, 2, 4, 1), keys, strict=True):
        meta = landed[key]
        assert (meta["range_first"], meta["range_last"]) == (span.first, span.last)
        assert meta["messages"] == n and meta["validated"] == n, (key, meta)
        assert meta["reused_earlier_run"] == (key == keys[1])
    assert len(list(_tree().data.labels.glob("*.txt"))) == 10
    # The run recorded its partitions in no particular order: the frontier is their highest end.
    assert landed_through(instance) == spans[-1].last

    again = _ingest_job(instance, keys[1:3])  # an operator re-runs two: nothing counted twice
    assert again.success
    records = instance.fetch_materializations(AssetKey("annotations"), limit=100).records
    latest = {r.partition_key: r.asset_materialization for r in reversed(records)}
    for key in keys[1:3]:
        meta = latest[key].metadata  # type: ignore[union-attr]
        assert meta["reused_earlier_run"].value and meta["validated"].value == 0


def test_an_open_partition_is_materialised_once_per_run_with_only_its_segment(stream_env, instance):
    """A block of 1,000 offsets fills over three runs: each materialises the partition again
    with the segment it applied, and counts only what that segment validated."""
    block = OffsetRange(0, 999).key
    instance.add_dynamic_partitions(ANNOTATION_BATCHES, [block])
    tails = []
    for n in (3, 2, 4):
        tails.append(_send(stream_env, synthetic(n, VALIDATOR, seed=n, prefix=f"s{n}", width=32)))
        first = tails[-2] + 1 if len(tails) > 1 else 0
        assert _ingest_job(instance, [block], OffsetRange(first, tails[-1])).success
    records = instance.fetch_materializations(AssetKey("annotations"), limit=10).records
    metas = [
        {k: getattr(v, "value", v) for k, v in r.asset_materialization.metadata.items()}  # type: ignore[union-attr]
        for r in reversed(records)
    ]
    assert [r.partition_key for r in records] == [block] * 3
    firsts = [0, tails[0] + 1, tails[1] + 1]
    assert [(m["range_first"], m["range_last"]) for m in metas] == list(
        zip(firsts, tails, strict=True)
    )
    assert [m["messages"] for m in metas] == [3, 2, 4]
    assert [m["validated"] for m in metas] == [3, 2, 4]  # each name counted by one segment
    assert [len(m["validated_names"]) for m in metas] == [3, 2, 4]
    assert len(list(_tree().data.labels.glob("*.txt"))) == 9
    with IngestState(state_path(_tree())) as state:
        assert state.totals()["messages"] == 9 and state.totals()["segments"] == 3

    # Re-executing the second run (same tag) reads nothing and counts nothing again.
    again = _ingest_job(instance, [block], OffsetRange(firsts[1], tails[1]))
    assert again.success
    (latest,) = instance.fetch_materializations(AssetKey("annotations"), limit=1).records
    meta = latest.asset_materialization.metadata  # type: ignore[union-attr]
    assert meta["reused_earlier_run"].value and meta["validated"].value == 0


def test_a_run_launched_by_hand_resumes_where_the_segments_end(stream_env, instance):
    """No offsets tag (the UI's Materialize): the partition's unapplied offsets up to the
    tail, then, once applied that far, its newest segment again, reused."""
    block = OffsetRange(0, 999).key
    first_tail = _send(stream_env, synthetic(3, VALIDATOR, prefix="a", width=32, height=32))
    instance.add_dynamic_partitions(ANNOTATION_BATCHES, [block])
    assert _ingest_job(instance, [block], OffsetRange(0, first_tail)).success
    tail = _send(stream_env, synthetic(2, VALIDATOR, prefix="b", width=32, height=32))
    meta = _run(instance, block)
    assert (meta["range_first"], meta["range_last"]) == (first_tail + 1, tail)
    assert meta["messages"] == 2 and meta["validated"] == 2 and meta["already_applied"] == 0
    again = _run(instance, block)
    assert (again["range_first"], again["range_last"]) == (first_tail + 1, tail)
    assert again["reused_earlier_run"] and again["validated"] == 0


def test_a_tag_that_misses_its_partition_fails_without_retrying(stream_env, instance):
    instance.add_dynamic_partitions(ANNOTATION_BATCHES, [OffsetRange(0, 9).key])
    result = _ingest_job(instance, [OffsetRange(0, 9).key], OffsetRange(20, 29))
    assert not result.success
    failure = result.failure_data_for_node("annotations")
    assert failure is not None and "offsets 000000000020-000000000029 do not reach" in str(
        failure.error
    )
