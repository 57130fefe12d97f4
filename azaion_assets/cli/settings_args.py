"""Settings as every command loads them: the global ``--config`` and ``--env-file`` options,
validated for the scopes a command needs."""

from __future__ import annotations

import argparse
import re

from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.fields import Scope, owner
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.config.settings_views import missing, missing_for
from azaion_assets.lib.config.sources import load_settings
from azaion_assets.lib.training.base_model import BaseModelError, resolve_base_model

EXIT_CONFIG = 2


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the global ``--config`` and ``--env-file`` options of every command."""
    return load_settings(args.config, args.env_file)


def checked_settings(
    args: argparse.Namespace, scopes: set[Scope] | None, *, only_scopes: bool = False
) -> Settings:
    """Load and validate for ``scopes`` (None = all); raise ``ConfigError`` with every problem.

    ``only_scopes``: another scope's invalid value is not a problem here (it takes its
    default), as in the runs of these scopes; ``config check --scope`` checks what they see.
    """
    try:
        settings = load_settings(args.config, args.env_file, scopes=scopes if only_scopes else None)
    except ConfigError as exc:
        extra = missing_for(exc.absent, scopes) if exc.absent is not None else []
        raise ConfigError(exc.problems + extra) from None
    problems = missing(settings, scopes)
    if scopes is None or Scope.TRAINING in scopes:
        try:
            resolve_base_model(settings.training_model, DataTree.from_settings(settings).models)
        except BaseModelError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError(problems)
    return settings


def scope_summary(problems: list[str], scopes: set[Scope] | None) -> str:
    """Which scopes the problems belong to, and how to check only one: an operator who runs
    only the ingest needs no training or release settings."""
    failing: dict[str, list[str]] = {}
    for problem in problems:
        name = problem.split(":", 1)[0]
        scope = owner(name) if re.fullmatch(r"[A-Z][A-Z0-9_]*", name) else None
        failing.setdefault(scope.value if scope else "common", []).append(name)
    checked = ", ".join(sorted(s.value for s in scopes)) if scopes else "every scope"
    parts = "; ".join(f"{scope}: {', '.join(names)}" for scope, names in sorted(failing.items()))
    lines = [f"checked {checked}; failing {parts}"]
    if not scopes:
        choices = "|".join(s.value for s in Scope)
        lines.append(
            "a machine that runs only part of the pipeline checks that part: "
            f"azaion-assets config check --scope {choices}"
        )
    return "\n".join(lines)


def scopes_of(args: argparse.Namespace) -> set[Scope] | None:
    return {Scope(s) for s in args.scope} if args.scope else None
