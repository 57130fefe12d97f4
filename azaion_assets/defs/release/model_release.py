"""Asset ``model_release``: the champion pair, encrypted, split, and shipped to the edge.

For partition P (which must be the champion: a release ships the model in production), each of
``azaion.pt`` and ``azaion.onnx`` is encrypted with ``MODEL_ENCRYPTION_KEY``; the small head of
the ciphertext goes to the Azaion API, the big rest to the CDN bucket named by ``cdn.yaml``,
and the manifest goes last (see ``lib.release.bundle``). ``model_release_sensor`` requests it after
each promotion; an operator can re-run any partition, which sends the same objects again
without duplicating them.

Transient failures (API 5xx, network, CDN) are retried by the client and then by the run's
retry policy; a wrong configuration or a partition that is not the champion fails at once.
"""

from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Backoff,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
    define_asset_job,
    in_process_executor,
)

from azaion_assets.defs.resources import AzaionApiResource, AzaionSettingsResource
from azaion_assets.lib.champion.card import card_from_record
from azaion_assets.lib.champion.files import read_record
from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.release import cdn
from azaion_assets.lib.release.azaion_api import ApiError
from azaion_assets.lib.release.bundle import (
    NotReleasable,
    Split,
    champion_pair,
    prepare,
    prune,
    release_lock,
    restore_from_live,
    upload_parts,
    upload_pointer,
)
from azaion_assets.lib.release.cdn import CdnError
from azaion_assets.lib.release.hardware import fingerprint
from azaion_assets.lib.release.release_manifest import POINTER

RELEASE_JOB = "model_release_job"
FAILURE_TAG = "azaion/release_failure"
PERMANENT = "permanent"


def model_release(
    context: AssetExecutionContext,
    azaion_settings: AzaionSettingsResource,
    azaion_api: AzaionApiResource,
) -> MaterializeResult:
    settings = azaion_settings.load(Scope.RELEASE)
    tree = azaion_settings.tree()
    partition = context.partition_key
    try:
        with release_lock(tree, lambda: context.log.info("waiting for another release")):
            released = _release(context, settings, tree, partition, azaion_api)
    except (ConfigError, NotReleasable) as exc:
        raise _failure(context, str(exc), transient=False) from None
    except ApiError as exc:
        # Refusals (4xx) will not change on a retry; outages (5xx, 429, no answer) may.
        raise _failure(context, str(exc), exc.transient) from None
    except CdnError as exc:
        raise _failure(context, str(exc), not exc.permanent) from None
    return MaterializeResult(metadata=released)


def _failure(context: AssetExecutionContext, message: str, transient: bool) -> Failure:
    """A failure that the step's retries (and model_release_sensor's) take up only if it is
    transient; a permanent one is tagged on the run, so the sensor leaves it to an operator
    rather than repeat it every RELEASE_RETRY_MINUTES (a wrong password would lock the account)."""
    if not transient:
        context.instance.add_run_tags(context.run.run_id, {FAILURE_TAG: PERMANENT})
    return Failure(message, allow_retries=transient)


def _release(
    context: AssetExecutionContext,
    settings: Settings,
    tree: DataTree,
    partition: str,
    azaion_api: AzaionApiResource,
) -> dict[str, Any]:
    out = tree.model_dir(partition) / "release"
    key = settings.require("MODEL_ENCRYPTION_KEY")
    api = azaion_api.client()
    limits = Split(settings.release_small_max_bytes, settings.release_small_fraction)
    with champion_pair(tree, partition):
        pass  # not the champion: fail before any request
    hardware = fingerprint()
    cdn_config = azaion_api.cdn_config(api, hardware)
    s3 = cdn.client(cdn_config, "write")
    folder = settings.release_api_folder
    restored = restore_from_live(out, partition, api, hardware, s3, cdn_config.bucket, folder)
    if restored:
        context.log.info(f"the kept parts were missing; took {partition}'s back from the edge")
    with champion_pair(tree, partition) as sources:
        card = card_from_record(read_record(tree.champion_onnx))  # checked by champion_pair
        manifest = prepare(
            sources,
            out,
            partition,
            key,
            settings.release_scheme,
            limits,
            settings.release_cdn_prefix,
            card=card,
        )
    context.log.info(
        f"encrypted ({settings.release_scheme}); kept parts reused: {manifest['reused']}"
    )
    uploaded = upload_parts(manifest, out, api, s3, cdn_config.bucket, folder)
    # The pointer switches only if these are still the champion's bytes, and no promotion can
    # slip in between the check and the switch.
    with champion_pair(tree, partition, manifest):
        public = upload_pointer(manifest, api, cdn_config.bucket, folder)
    pruned = prune(s3, cdn_config.bucket, settings.release_cdn_prefix, public)
    context.log.info(
        f"released {partition}: CDN sent {uploaded.sent}, already there {uploaded.present}, "
        f"pruned {pruned}"
    )
    return {
        **_metadata(public),
        "cdn_uploaded": len(uploaded.sent),
        "cdn_already_present": len(uploaded.present),
        "cdn_pruned": MetadataValue.json(pruned),
        "parts_reused": MetadataValue.json(manifest["reused"]),
        "parts_restored_from_live": restored,
    }


def _metadata(manifest: dict[str, Any]) -> dict[str, Any]:
    files = {}
    for entry in manifest["files"]:
        files[entry["name"]] = {
            "plaintext_sha256": entry["plaintext_sha256"],
            "plaintext_bytes": entry["plaintext_bytes"],
            "api_resource": f"{manifest['api_folder']}/{entry['small']['name']}",
            "small_bytes": entry["small"]["bytes"],
            "small_sha256": entry["small"]["sha256"],
            "cdn_object": f"{manifest['bucket']}/{entry['big']['key']}",
            "big_bytes": entry["big"]["bytes"],
            "big_sha256": entry["big"]["sha256"],
        }
    return {
        "scheme": manifest["scheme"],
        "files": MetadataValue.json(files),
        "manifest": f"{manifest['api_folder']}/{POINTER}",
        "pt_sha256": files["azaion.pt"]["plaintext_sha256"],
        "onnx_sha256": files["azaion.onnx"]["plaintext_sha256"],
    }


def build_model_release(days: DailyPartitionsDefinition) -> AssetsDefinition:
    return asset(
        partitions_def=days,
        deps=["onnx_model", "champion"],
        group_name="release",
        kinds={"s3"},
        retry_policy=RetryPolicy(max_retries=3, delay=10, backoff=Backoff.EXPONENTIAL),
        description="The champion .pt and .onnx, encrypted; small parts on the Azaion API, big "
        "parts on the CDN, manifest azaion.release.json last",
    )(model_release)


model_release_job = define_asset_job(
    RELEASE_JOB,
    selection=["model_release"],
    executor_def=in_process_executor,  # one step: no second process start per release
    tags={"azaion/stage": "release"},
    description="Encrypt the champion pair and ship it: small parts to the API, big to the CDN",
)
