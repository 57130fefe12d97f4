"""Files rendered from the settings schema: ``.env.example`` and ``config.yaml``.

``.env.example`` is generated, never hand-edited, so it cannot drift from the schema (a test
compares the two). ``config.yaml`` holds real values, secrets included, and is written 0600.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from azaion_assets.lib.config.deployenv import DEPLOY_VARS
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.config.settings_views import field_extra, render_dict

ENV_HEADER = """\
# azaion-assets configuration: every variable, with its default.
# Generated from azaion_assets/lib/config/settings.py by `azaion-assets env-example`; do not edit.
# Copy to .env (never committed) and fill in the secrets: they have no defaults, and the
# parts of the pipeline that need them refuse to start without them.
"""

DEPLOY_HEADER = """
# --- Deployment (docker-compose / Helm) ---
# Read by docker-compose.yml and deploy/ (see azaion_assets/lib/config/deployenv.py), not by
# azaion-assets itself. Secrets have no defaults: docker-compose refuses to start without them.
"""


def env_value(value: object) -> str:
    """A default as a .env line writes it (also the reference's Default column)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if not isinstance(value, Path) else value.as_posix()


def render_env_example() -> str:
    lines = [ENV_HEADER]
    for name, info in Settings.model_fields.items():
        extra = field_extra(info)
        notes = []
        if extra.get("secret"):
            notes.append("secret")
        if extra.get("scopes"):
            notes.append("required for " + ", ".join(extra["scopes"]))
        suffix = f" ({'; '.join(notes)})" if notes else ""
        lines.append(f"# {info.description}{suffix}")
        lines.append(f"{name.upper()}={env_value(info.default)}")
    lines.append(DEPLOY_HEADER)
    for var in DEPLOY_VARS:
        lines.append(f"# {var.doc}{' (secret)' if var.secret else ''}")
        lines.append(f"{var.name}={env_value(var.default)}")
    return "\n".join(lines) + "\n"


def render_config_yaml(settings: Settings) -> str:
    header = "# Rendered by `azaion-assets config render`; holds secrets, keep it 0600.\n"
    values = {k: v for k, v in render_dict(settings).items() if v is not None}
    return header + yaml.safe_dump(values, sort_keys=False, allow_unicode=True)
