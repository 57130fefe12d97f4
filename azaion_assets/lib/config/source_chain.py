"""The chain of sources one settings load reads, highest first: the environment, ``.env``,
values given in code, then ``config.yaml`` (checked for unknown variables).

``Settings.settings_customise_sources`` returns it; ``sources.load_settings`` sets what one load
reads (the config.yaml path, and the fields whose given values it ignores) in ``LOAD``. It knows
the schema only as the class pydantic hands it, so ``settings`` imports it and not the reverse.
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any

import yaml
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, YamlConfigSettingsSource

from azaion_assets.lib.config.config_error import ConfigError

# What one load reads: the config.yaml path, and the fields whose given values it ignores.
LOAD: contextvars.ContextVar[tuple[Path | None, frozenset[str]]] = contextvars.ContextVar(
    "azaion_settings_load", default=(None, frozenset())
)


class ConfigYamlSource(YamlConfigSettingsSource):
    """``config.yaml``: a mapping of VARIABLE: value; an unknown variable is an error."""

    def __init__(self, settings_cls: type[BaseSettings], yaml_file: Path) -> None:
        self._known = {n.upper() for n in settings_cls.model_fields}  # the base reads the file
        super().__init__(settings_cls, yaml_file=yaml_file)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            raw = yaml.safe_load(Path(file_path).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError([f"{file_path}: not valid YAML{where}"]) from None
        if not isinstance(raw, dict):
            raise ConfigError([f"{file_path}: must be a mapping of VARIABLE: value"])
        unknown = sorted(str(k) for k in raw if str(k).upper() not in self._known)
        if unknown:
            raise ConfigError([f"{file_path}: unknown variable {k}" for k in unknown])
        return {str(k).upper(): v for k, v in raw.items() if v is not None}


class _Without(PydanticBaseSettingsSource):
    """Another source's values, less the ignored fields (which then take their defaults)."""

    def __init__(self, inner: PydanticBaseSettingsSource, ignored: frozenset[str]):
        super().__init__(inner.settings_cls)
        self._inner, self._ignored = inner, ignored

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._inner().items() if k.lower() not in self._ignored}


def sources(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
    dotenv_settings: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    """``Settings.settings_customise_sources``: the environment, ``.env``, values given in code
    (``Settings(azaion_root_dir=...)``), then ``config.yaml``."""
    config_path, ignored = LOAD.get()
    chosen = [env_settings, dotenv_settings, init_settings]
    if config_path is not None:
        chosen.append(ConfigYamlSource(settings_cls, yaml_file=config_path))
    return tuple(_Without(s, ignored) for s in chosen) if ignored else tuple(chosen)
