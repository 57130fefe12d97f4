"""Dagster resources: the bridge from the one settings schema into runs.

The resource holds only where configuration lives; values are resolved when a step first asks,
not when the code location loads, so the location loads without secrets and each run sees the
configuration as it is when the run starts.
"""

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from azaion_assets.core.azaion_api import AzaionApi, api_from_settings
from azaion_assets.core.cdn import CdnConfig, fetch_config
from azaion_assets.core.datatree import DataTree
from azaion_assets.core.settings import Settings, load_settings


class AzaionSettingsResource(ConfigurableResource):
    """Settings from the environment, ``.env`` and ``config.yaml`` (in that order of precedence)."""

    config_file: str | None = None  # default: ./config.yaml if present; a named file must exist
    env_file: str | None = None  # default: ./.env if present; a named file must exist

    _settings: Settings | None = PrivateAttr(default=None)

    def load(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file, self.env_file)
        return self._settings

    def tree(self) -> DataTree:
        """The data tree, created if missing."""
        return DataTree.from_settings(self.load()).ensure()


class AzaionApiResource(ConfigurableResource):
    """The Azaion REST API and, through it, the CDN credentials, from the same settings.

    Credentials are read when a step asks for a client, never at load; ``cdn.yaml`` is fetched
    per run and kept in memory only.
    """

    settings: AzaionSettingsResource

    def client(self) -> AzaionApi:
        return api_from_settings(self.settings.load())

    def cdn_config(self, api: AzaionApi, hardware: str) -> CdnConfig:
        return fetch_config(api, self.settings.load().release_cdn_config_folder, hardware)
