"""``model_release`` materialised on a real instance against the local Azaion API and moto's S3
server over HTTP, then taken apart again with the ``azaion-assets release`` commands.

The champion pair here is random bytes published the way a promotion publishes it; the real
trained pair goes through the same path in test_pipeline.
"""

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetExecutionContext, DagsterEventType, DagsterInstance, asset, materialize

from azaion_assets.cli.main import main
from azaion_assets.defs.release import model_release as model_release_module
from azaion_assets.defs.release.model_release import FAILURE_TAG, PERMANENT
from azaion_assets.defs.resources import AzaionApiResource, AzaionSettingsResource
from azaion_assets.lib.champion.files import publish_pair
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.release.cdn import CDN_CONFIG
from azaion_assets.lib.release.cdn import client as cdn_client
from azaion_assets.lib.release.release_manifest import POINTER
from azaion_assets_tests.conftest import ReleaseServices
from azaion_assets_tests.dated import champion, model_release, onnx_model

P = "2026-11-20"
_settings = AzaionSettingsResource()
RESOURCES = {
    "azaion_settings": _settings,
    "azaion_api": AzaionApiResource(azaion_settings=_settings),
}


@pytest.fixture
def champion_pair(tree: DataTree, tmp_path: Path) -> dict[str, bytes]:
    pt, onnx = os.urandom(120_000), os.urandom(60_000)
    (tmp_path / "best.pt").write_bytes(pt)
    (tmp_path / "m.onnx").write_bytes(onnx)
    files = [(tmp_path / "m.onnx", tree.champion_onnx), (tmp_path / "best.pt", tree.champion)]
    publish_pair(files, P)
    return {"azaion.pt": pt, "azaion.onnx": onnx}


def release(instance: DagsterInstance, partition: str = P):
    return materialize(
        [onnx_model, champion, model_release],
        instance=instance,
        partition_key=partition,
        resources=RESOURCES,
        selection=[model_release],
        raise_on_error=False,
    )


def event_log_text(instance: DagsterInstance) -> str:
    """Every event of every run, and every byte the instance stored (event log database,
    captured compute logs), as text."""
    events = [str(e) for run in instance.get_runs() for e in instance.all_logs(run.run_id)]
    stored = [
        path.read_bytes().decode("latin-1")
        for path in Path(instance.root_directory).rglob("*")
        if path.is_file()
    ]
    return "\n".join(events + stored)


def test_release_ships_the_champion_and_the_cli_gets_it_back_byte_identical(
    instance, release_env: ReleaseServices, champion_pair, tree, tmp_path
):
    release_env.only("write")  # a release signs with the write pair alone
    result = release(instance)
    assert result.success
    meta = result.asset_materializations_for_node("model_release")[0].metadata
    files = meta["files"].value
    assert isinstance(files, dict)
    pt: dict[str, Any] = files["azaion.pt"]  # type: ignore[assignment]
    assert pt["small_bytes"] == 3072 and pt["plaintext_bytes"] == 120_000
    assert re.fullmatch(rf"models/azaion-{P}\.pt\.[0-9a-f]{{16}}\.small", pt["api_resource"])
    bucket = release_env.cdn.bucket
    assert re.fullmatch(
        rf"{bucket}/models/azaion-{P}/azaion\.pt\.[0-9a-f]{{16}}\.big", pt["cdn_object"]
    )
    assert meta["scheme"].value == "aes-256-cbc" and meta["cdn_uploaded"].value == 2
    objects = release_env.bucket_objects()
    big_keys = sorted(f["cdn_object"].split("/", 1)[1] for f in files.values())  # type: ignore[union-attr]
    assert sorted(objects) == big_keys
    assert len(objects[pt["cdn_object"].split("/", 1)[1]]) == pt["big_bytes"]

    release_env.only("read")  # and an edge device with the read pair alone
    assert main(["release", "fetch", "--out", str(tmp_path / "edge")]) == 0
    parts = tree.model_dir(P) / "release"
    assert main(["release", "decrypt", str(parts), "--out", str(tmp_path / "local")]) == 0
    for name, data in champion_pair.items():
        assert (tmp_path / "edge" / name).read_bytes() == data
        assert (tmp_path / "local" / name).read_bytes() == data

    text = event_log_text(instance) + str(meta)
    for secret in release_env.secrets:
        assert secret not in text


def test_a_rerun_duplicates_nothing(instance, release_env: ReleaseServices, champion_pair):
    assert release(instance).success
    objects = release_env.bucket_objects()
    folder = dict(release_env.api.folders["models"])
    release_env.api.expire_tokens()
    again = release(instance)
    assert again.success
    meta = again.asset_materializations_for_node("model_release")[0].metadata
    assert meta["cdn_uploaded"].value == 0 and meta["cdn_already_present"].value == 2
    assert release_env.bucket_objects() == objects
    assert release_env.api.folders["models"] == folder
    assert len(folder) == 3 and POINTER in folder and len(objects) == 2


def test_a_rerun_without_the_kept_parts_takes_them_back_from_the_live_release(
    instance, release_env: ReleaseServices, champion_pair, tree
):
    """The parts beside the model are gone (another machine, a cleanup): encrypting anew would
    give new names and a second copy of each small part on the API, which cannot delete."""
    assert release(instance).success
    objects, folder = release_env.bucket_objects(), dict(release_env.api.folders["models"])
    shutil.rmtree(tree.model_dir(P) / "release")
    again = release(instance)
    assert again.success
    meta = again.asset_materializations_for_node("model_release")[0].metadata
    assert meta["parts_restored_from_live"].value is True
    assert meta["parts_reused"].value == ["azaion.pt", "azaion.onnx"]
    assert meta["cdn_uploaded"].value == 0
    assert release_env.bucket_objects() == objects
    assert release_env.api.folders["models"] == folder


def test_a_short_api_outage_is_ridden_out(instance, release_env: ReleaseServices, champion_pair):
    release_env.api.fail_next(3, status=503)
    assert release(instance).success
    assert [s for _, _, s in release_env.api.requests[:3]] == [503, 503, 503]


def _failure(instance: DagsterInstance, result) -> tuple[str, int]:
    """The step's failure message and how many retries it had. A failure that is not retried
    is tagged permanent on its run, so that model_release_sensor leaves it to an operator."""
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    retries = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert failures, "the step did not fail"
    info = failures[0].step_failure_data.error
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    assert (run.tags.get(FAILURE_TAG) == PERMANENT) == (not retries), run.tags
    return (info.message if info else ""), len(retries)


@pytest.mark.parametrize("transient", [True, False], ids=["outage", "refusal"])
def test_only_a_permanent_failure_is_tagged_for_the_sensor_to_leave_alone(instance, transient):
    """An outage must stay untagged, or model_release_sensor would stop healing outages."""

    @asset(name="fails")
    def fails(context: AssetExecutionContext) -> None:
        raise model_release_module._failure(context, "the reason", transient)

    result = materialize([fails], instance=instance, raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    assert not result.success and run is not None
    assert (run.tags.get(FAILURE_TAG) == PERMANENT) is not transient


def test_a_partition_that_is_not_the_champion_fails_at_once(
    instance, release_env: ReleaseServices, champion_pair
):
    result = release(instance, "2026-11-21")
    message, retries = _failure(instance, result)
    assert "2026-11-21 is not the champion" in message and "promote_model" in message
    assert retries == 0
    assert release_env.bucket_objects() == {} and "models" not in release_env.api.folders


def test_a_missing_model_key_is_named_and_nothing_is_sent(
    instance, release_env: ReleaseServices, champion_pair, monkeypatch
):
    monkeypatch.delenv("MODEL_ENCRYPTION_KEY")
    message, retries = _failure(instance, release(instance))
    assert "MODEL_ENCRYPTION_KEY is not set" in message and retries == 0
    assert release_env.api.requests == []


def test_wrong_api_credentials_fail_without_retries_or_the_password(
    instance, release_env: ReleaseServices, champion_pair, monkeypatch
):
    monkeypatch.setenv("AZAION_API_PASSWORD", "a-wrong-password-value")
    message, retries = _failure(instance, release(instance))
    assert "AZAION_API_PASSWORD" in message and retries == 0
    assert "a-wrong-password-value" not in event_log_text(instance)


def test_a_promotion_during_the_release_stops_it_before_the_pointer_switches(
    instance, release_env: ReleaseServices, champion_pair, tree, tmp_path, monkeypatch
):
    """Another model promoted while the parts upload: this release must not become live."""
    real = model_release_module.upload_parts

    def upload_then_promote(*args, **kwargs):
        uploaded = real(*args, **kwargs)
        other = tmp_path / "other.bin"
        other.write_bytes(os.urandom(1000))
        publish_pair([(other, tree.champion_onnx), (other, tree.champion)], "2026-11-21")
        return uploaded

    monkeypatch.setattr(model_release_module, "upload_parts", upload_then_promote)
    message, retries = _failure(instance, release(instance))
    assert f"{P} is not the champion" in message and retries == 0
    assert POINTER not in release_env.api.folders["models"]


def test_the_same_partition_republished_during_the_release_stops_it_too(
    instance, release_env: ReleaseServices, champion_pair, tree, tmp_path, monkeypatch
):
    """promote_model can publish the same partition again with other bytes (an ONNX exported
    anew): the parts of the old bytes must not become live under the partition's name."""
    real = model_release_module.upload_parts

    def upload_then_republish(*args, **kwargs):
        uploaded = real(*args, **kwargs)
        other = tmp_path / "reexported.onnx"
        other.write_bytes(os.urandom(1000))
        same_pt = tmp_path / "same.pt"
        same_pt.write_bytes(champion_pair["azaion.pt"])
        files = [(other, tree.champion_onnx), (same_pt, tree.champion)]
        assert publish_pair(files, P, force=True).published
        return uploaded

    monkeypatch.setattr(model_release_module, "upload_parts", upload_then_republish)
    message, retries = _failure(instance, release(instance))
    assert "azaion.onnx of 2026-11-20 was published again with other bytes" in message
    assert retries == 0 and POINTER not in release_env.api.folders["models"]


def test_a_missing_bucket_fails_without_retries(
    instance, release_env: ReleaseServices, champion_pair
):
    text = release_env.local_cdn.cdn_yaml("no-such-bucket")
    release_env.api.put("config", CDN_CONFIG, text.encode())
    message, retries = _failure(instance, release(instance))
    assert "NoSuchBucket" in message and retries == 0


def test_a_release_without_a_usable_write_pair_fails_at_once(
    instance, release_env: ReleaseServices, champion_pair
):
    release_env.only("read")  # what an edge device's cdn.yaml may hold: no write rights
    message, retries = _failure(instance, release(instance))
    assert "CDN upload" in message and "InvalidAccessKeyId" in message and retries == 0
    assert release_env.bucket_objects() == {}
    for secret in release_env.secrets:
        assert secret not in message


def test_release_fetch_exits_1_on_a_tampered_big_part(
    instance, release_env: ReleaseServices, champion_pair, tmp_path, capsys
):
    assert release(instance).success
    key, body = next(iter(release_env.bucket_objects().items()))
    writer = cdn_client(release_env.cdn, "write")
    writer.put_object(
        Bucket=release_env.cdn.bucket, Key=key, Body=body[:-1] + bytes([body[-1] ^ 0xFF])
    )
    assert main(["release", "fetch", "--out", str(tmp_path / "edge")]) == 1
    assert "does not match the manifest's sha256" in capsys.readouterr().err
    assert not (tmp_path / "edge").exists()
