"""The services a demo runs against: a broker, and release stand-ins it fetches back from.

The configured broker if RABBITMQ_HOST is set, else a throwaway local one; for releases always
a local Azaion API and a local S3 server, never the configured API, whose pointer the whole edge
fleet reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from azaion_assets.dev.localbroker import LocalBroker
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.stream.stream_connection import StreamTarget


@contextmanager
def broker_for(settings: Settings) -> Iterator[tuple[StreamTarget, dict[str, str]]]:
    """The stream and the RABBITMQ_* the runs need: the configured broker (nothing to add to
    the environment), or a local one for the demo's lifetime."""
    if os.environ.get("RABBITMQ_HOST"):
        yield StreamTarget.from_settings(settings), {}
        return
    with LocalBroker() as local:
        print(f"started a local RabbitMQ with streams on {local.host}:{local.stream_port}")
        target = local.target(settings.rabbitmq_queue_name)
        yield target, target.as_env()


@contextmanager
def release_services_for(settings: Settings) -> Iterator[dict[str, str]]:
    """The release settings the demo's runs get, overriding any configured ones: a local Azaion
    API stand-in (docs/azaion-api.md) and a local S3 server with per-role key pairs
    (``dev.localcdn``) for the demo's lifetime, with throwaway credentials and model key. A
    demo never releases to the real API, whose pointer the whole edge fleet reads."""
    import secrets

    from azaion_assets.dev.localapi import LocalAzaionApi
    from azaion_assets.dev.localcdn import LocalCdn

    email, password = "demo@azaion.local", secrets.token_urlsafe(16)
    with LocalCdn() as cdn, LocalAzaionApi(email, password) as api:
        cdn.provision(api, "azaion-models", settings.release_cdn_config_folder)
        print(f"started a local Azaion API on {api.url} and a local S3 server on {cdn.endpoint}")
        yield {
            "AZAION_API_URL": api.url,
            "AZAION_API_EMAIL": email,
            "AZAION_API_PASSWORD": password,
            "MODEL_ENCRYPTION_KEY": secrets.token_urlsafe(24),
        }


def verify_release(settings: Settings, env: dict[str, str], target: Path) -> dict:
    """Fetch the current release as an edge device would; returns its manifest."""
    from azaion_assets.lib.release.azaion_api import AzaionApi
    from azaion_assets.lib.release.hardware import fingerprint
    from azaion_assets.lib.release.reassembly import fetch

    api = AzaionApi(env["AZAION_API_URL"], env["AZAION_API_EMAIL"], env["AZAION_API_PASSWORD"])
    key = env["MODEL_ENCRYPTION_KEY"]
    folders = (settings.release_api_folder, settings.release_cdn_config_folder)
    return fetch(api, fingerprint(), key, target, *folders)
