"""Settings as every command loads them: the global ``--config`` and ``--env-file`` options,
validated for the scopes a command needs."""

from __future__ import annotations

import argparse

from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.config.settings_views import missing_for
from azaion_assets.lib.config.sources import load_settings
from azaion_assets.lib.training.base_model import BaseModelError, resolve_base_model

EXIT_CONFIG = 2


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the global ``--config`` and ``--env-file`` options of every command."""
    return load_settings(args.config, args.env_file)


def checked_settings(args: argparse.Namespace, scopes: set[Scope] | None) -> Settings:
    """Load and validate for ``scopes`` (None = all); raise ``ConfigError`` with every problem."""
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        extra = missing_for(exc.absent, scopes) if exc.absent is not None else []
        raise ConfigError(exc.problems + extra) from None
    problems = settings.missing(scopes)
    if scopes is None or Scope.TRAINING in scopes:
        try:
            resolve_base_model(settings.training_model, DataTree.from_settings(settings).models)
        except BaseModelError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError(problems)
    return settings


def scopes_of(args: argparse.Namespace) -> set[Scope] | None:
    return {Scope(s) for s in args.scope} if args.scope else None
