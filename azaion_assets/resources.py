"""Dagster resources: the bridge from the one settings schema into runs.

The resource holds only where configuration lives; values are resolved when a step starts, not
when the code location loads, so the location loads without secrets and a run always sees the
configuration as it is now.
"""

from dagster import ConfigurableResource

from azaion_assets.core.datatree import DataTree
from azaion_assets.core.settings import (
    DEFAULT_CONFIG_FILE,
    DEFAULT_ENV_FILE,
    Settings,
    load_settings,
)


class AzaionSettingsResource(ConfigurableResource):
    """Settings from the environment, ``.env`` and ``config.yaml`` (in that order of precedence)."""

    config_file: str = str(DEFAULT_CONFIG_FILE)
    env_file: str = str(DEFAULT_ENV_FILE)

    def load(self) -> Settings:
        return load_settings(self.config_file, self.env_file)

    def tree(self) -> DataTree:
        return DataTree.from_settings(self.load()).ensure()
