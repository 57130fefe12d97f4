"""Dagster resources: the bridge from the one settings schema into runs.

The resource holds only where configuration lives; values are resolved when a step first asks,
not when the code location loads, so the location loads without secrets and each run sees the
configuration as it is when the run starts.
"""

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.config.sources import load_settings
from azaion_assets.lib.release.azaion_api import AzaionApi, api_from_settings
from azaion_assets.lib.release.cdn import CdnConfig, fetch_config


class AzaionSettingsResource(ConfigurableResource):
    """Settings from the environment, ``.env`` and ``config.yaml`` (in that order of precedence)."""

    config_file: str | None = None  # default: ./config.yaml if present; a named file must exist
    env_file: str | None = None  # default: ./.env if present; a named file must exist

    _loaded: dict[frozenset[Scope], Settings] = PrivateAttr(default_factory=dict)

    def load(self, *scopes: Scope) -> Settings:
        """The settings as the parts ``scopes`` need them: an invalid variable of theirs (or of
        the data tree) raises ``ConfigError`` naming it; another part's takes its default, so a
        bad training value fails the training steps and never the ingest."""
        key = frozenset(scopes)
        if key not in self._loaded:
            self._loaded[key] = load_settings(self.config_file, self.env_file, scopes=key)
        return self._loaded[key]

    def tree(self) -> DataTree:
        """The data tree, created if missing. Its variables are common to every scope, so any
        load of this run already holds them; none is repeated for it."""
        loaded = next(iter(self._loaded.values()), None)
        return DataTree.from_settings(loaded or self.load()).ensure()


class AzaionApiResource(ConfigurableResource):
    """The Azaion REST API and, through it, the CDN credentials, from the same settings.

    Credentials are read when a step asks for a client, never at load; ``cdn.yaml`` is fetched
    per run and kept in memory only.
    """

    azaion_settings: AzaionSettingsResource

    def client(self) -> AzaionApi:
        return api_from_settings(self.azaion_settings.load(Scope.RELEASE))

    def cdn_config(self, api: AzaionApi, hardware: str) -> CdnConfig:
        folder = self.azaion_settings.load(Scope.RELEASE).release_cdn_config_folder
        return fetch_config(api, folder, hardware)
