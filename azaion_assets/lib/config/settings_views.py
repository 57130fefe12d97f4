"""What the schema and loaded settings show: values by variable, secrets, scoped gaps.

Values masked for logs and metadata (``public_dict``) or revealed for the 0600 ``config.yaml``
(``render_dict``), which variables are secret, which scope owns each (``by_scope``), and what a
scope misses. All read the field
metadata that ``fields.setting`` writes; the schema itself stays in ``settings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from azaion_assets.lib.config.fields import Scope, owner
from azaion_assets.lib.config.settings import Settings


def public_dict(settings: Settings) -> dict[str, Any]:
    """All values by variable name, secrets masked; safe for logs and metadata."""
    out: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = "**********" if value.get_secret_value() else None
        elif isinstance(value, Path):
            value = str(value)
        out[name.upper()] = value
    return out


def render_dict(settings: Settings) -> dict[str, Any]:
    """All values by variable name with secrets revealed, for the 0600 ``config.yaml``."""
    out = public_dict(settings)
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            out[name.upper()] = value.get_secret_value()
    return out


def missing(settings: Settings, scopes: set[Scope] | None = None) -> list[str]:
    """Variables required by ``scopes`` (all scopes when None) that are not set."""
    absent = {
        name
        for name in type(settings).model_fields
        if (value := getattr(settings, name)) is None
        or (isinstance(value, SecretStr) and not value.get_secret_value())
    }
    return missing_for(absent, scopes)


def missing_for(absent: set[str], scopes: set[Scope] | None = None) -> list[str]:
    """Problems for the ``absent`` fields that ``scopes`` (all scopes when None) require."""
    problems = []
    for name, info in Settings.model_fields.items():
        field_scopes = set(field_extra(info).get("scopes", []))
        wanted = {s.value for s in scopes} if scopes is not None else field_scopes
        if name in absent and field_scopes & wanted:
            problems.append(
                f"{name.upper()}: missing (required for {', '.join(sorted(field_scopes))})"
            )
    return problems


def by_scope() -> dict[Scope | None, list[str]]:
    """Field names by the scope whose runs use them (None: the data tree, common to every
    scope), in schema order: the groups that ``config check --scope`` judges together."""
    groups: dict[Scope | None, list[str]] = {}
    for name in Settings.model_fields:
        groups.setdefault(owner(name), []).append(name)
    return groups


def secret_fields() -> list[str]:
    return [n.upper() for n, i in Settings.model_fields.items() if field_extra(i).get("secret")]


def field_extra(info: Any) -> dict[str, Any]:
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}
