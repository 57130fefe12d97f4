"""Loading settings from the environment, a ``.env`` file and ``config.yaml``, highest first
(the chain itself is ``source_chain``). With
``scopes``, ``load_settings`` lets an invalid variable of another scope take its default, so
that a bad training value never stops the ingest; it is reported where its scope runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.fields import Scope, owner
from azaion_assets.lib.config.settings import DEFAULT_CONFIG_FILE, DEFAULT_ENV_FILE, Settings
from azaion_assets.lib.config.source_chain import LOAD


def _optional_or_named(given: Path | str | None, default: Path, what: str) -> Path | None:
    """The default file is optional; a file the caller names explicitly must exist."""
    if given is None:
        return default if default.is_file() else None
    path = Path(given)
    if not path.is_file():
        raise ConfigError([f"{what} {path} does not exist"])
    return path


def _build(config_path: Path | None, env_path: Path | None, ignored=frozenset()) -> Settings:
    token = LOAD.set((config_path, ignored))
    try:
        return Settings(_env_file=env_path)  # type: ignore[call-arg]
    finally:
        LOAD.reset(token)


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
