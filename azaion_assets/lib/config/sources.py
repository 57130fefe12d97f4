"""Where settings come from: the environment, a ``.env`` file and ``config.yaml``, highest first.

``config.yaml`` is read by pydantic-settings' YAML source, checked for unknown variables. With
``scopes``, ``load_settings`` lets an invalid variable of another scope take its default, so
that a bad training value never stops the ingest; it is reported where its scope runs.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, YamlConfigSettingsSource

from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.fields import Scope, owner
from azaion_assets.lib.config.settings import DEFAULT_CONFIG_FILE, DEFAULT_ENV_FILE, Settings

# What one load reads: the config.yaml path, and the fields whose given values it ignores.
_LOAD: contextvars.ContextVar[tuple[Path | None, frozenset[str]]] = contextvars.ContextVar(
    "azaion_settings_load", default=(None, frozenset())
)


class ConfigYamlSource(YamlConfigSettingsSource):
    """``config.yaml``: a mapping of VARIABLE: value; an unknown variable is an error."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            raw = yaml.safe_load(Path(file_path).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError([f"{file_path}: not valid YAML{where}"]) from None
        if not isinstance(raw, dict):
            raise ConfigError([f"{file_path}: must be a mapping of VARIABLE: value"])
        known = {n.upper() for n in Settings.model_fields}
        unknown = sorted(str(k) for k in raw if str(k).upper() not in known)
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
    config_path, ignored = _LOAD.get()
    chosen = [env_settings, dotenv_settings, init_settings]
    if config_path is not None:
        chosen.append(ConfigYamlSource(settings_cls, yaml_file=config_path))
    return tuple(_Without(s, ignored) for s in chosen) if ignored else tuple(chosen)


def _optional_or_named(given: Path | str | None, default: Path, what: str) -> Path | None:
    """The default file is optional; a file the caller names explicitly must exist."""
    if given is None:
        return default if default.is_file() else None
    path = Path(given)
    if not path.is_file():
        raise ConfigError([f"{what} {path} does not exist"])
    return path


def _build(config_path: Path | None, env_path: Path | None, ignored=frozenset()) -> Settings:
    token = _LOAD.set((config_path, ignored))
    try:
        return Settings(_env_file=env_path)  # type: ignore[call-arg]
    finally:
        _LOAD.reset(token)


def load_settings(
    config_file: Path | str | None = None,
    env_file: Path | str | None = None,
    *,
    scopes: Iterable[Scope] | None = None,
) -> Settings:
    """Resolve settings from the environment, ``.env`` and ``config.yaml``.

    Without arguments, ``config.yaml`` and ``.env`` in the working directory are read if they
    exist. A file named explicitly must exist. Invalid values raise ``ConfigError`` listing
    every problem at once; with ``scopes``, only those of the scopes given and of the common
    variables do, and another scope's invalid variable takes its default.
    """
    config_path = _optional_or_named(config_file, DEFAULT_CONFIG_FILE, "config file")
    env_path = _optional_or_named(env_file, DEFAULT_ENV_FILE, "env file")
    try:
        return _build(config_path, env_path)
    except ConfigError as exc:
        if scopes is None or exc.invalid is None:
            raise
        wanted = set(scopes)
        ours = [n for n in exc.invalid if owner(n) is None or owner(n) in wanted]
        if ours:
            raise ConfigError([p for n in ours for p in exc.invalid[n]], exc.absent) from None
        return _build(config_path, env_path, frozenset(exc.invalid))
