"""The configuration reference, generated from the settings schema as ``.env.example`` is.

``docs/configuration.md`` holds every variable in Markdown tables, one per scope;
``docs/configuring.md`` holds the list of those groups between two marker comments. Both are
written by ``azaion-assets settings-doc`` and checked by its ``--check`` in ``make lint``, so a
new setting reaches them when the command is rerun, never by hand.
"""

from __future__ import annotations

from typing import Any

from azaion_assets.lib.config.deployenv import DEPLOY_VARS
from azaion_assets.lib.config.envfile import env_value
from azaion_assets.lib.config.fields import Scope, prefixes
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.config.settings_views import by_scope, field_extra

DOC_FILE = "docs/configuration.md"
GUIDE_FILE = "docs/configuring.md"  # beside DOC_FILE: its links are relative to docs/
START = "<!-- settings:start -->"
END = "<!-- settings:end -->"
GENERATED = "<!-- Generated from the settings schema by `azaion-assets settings-doc`. -->"
COMMON = "common"
DEPLOYMENT = "deployment"

# What reads each group: one line in the guide's list and under the group's heading.
_READERS: dict[Scope | None, str] = {
    None: "the data tree (where annotations, datasets and models live), the first dated "
    "partition, the health checks' thresholds, the pictures on the asset pages. Every scope "
    "reads these, so an invalid value stops every part",
    Scope.STREAM: "the broker and the annotation stream: `annotation_stream_sensor` and the "
    "ingest runs",
    Scope.TRAINING: "datasets, training, the ONNX export and its parity, the champion gate, the "
    "champion on new data, GPU pods: `retraining_sensor`, `retraining_job`, "
    "`champion_monitor_sensor` and `champion_monitor`",
    Scope.RELEASE: "the Azaion API, the encryption and the CDN split of the champion: "
    "`model_release_sensor` and `model_release_job`",
    Scope.HOUSEKEEPING: "what the pipeline derives and how long it is kept (datasets, models, "
    "checkpoints, release parts, quarantine): `housekeeping_job` and its daily schedule",
}
_DEPLOYMENT_READERS = (
    "read by `docker-compose.yml` and `deploy/`, not by azaion-assets (the last section of "
    "`.env.example`)"
)

_INTRO = f"""\
# Configuration reference

{GENERATED}

Every variable, grouped by the scope whose runs read it. Values resolve in this order: the
environment, `.env`, `config.yaml`, then the defaults below, which are those of
[`settings.py`](../azaion_assets/lib/config/settings.py). [`.env.example`](../.env.example) lists
the same variables with their defaults, ready to copy to `.env`.

- **Required**: the parts of that scope refuse to run without it and name it; the other scopes
  never ask for it.
- **Secret**: no default; masked in every output (`config check`, logs, run metadata). Set it in
  the environment, `.env`, or the 0600 `config.yaml` that `azaion-assets config render` writes.
- An invalid value stops only the sensors and runs of its own scope; elsewhere it takes its
  default. The common variables are read by every scope.
- `azaion-assets config check --scope stream` judges the configuration as the stream's runs
  see it (repeat `--scope` for several; without it, every scope is checked).
"""


def groups() -> list[tuple[str, Scope | None, list[str]]]:
    """(name, scope, field names) in pipeline order: common, stream, training, release, then any
    scope added later; a scope without a line in ``_READERS`` is an error, not a silent gap."""
    fields = by_scope()
    order: list[Scope | None] = [
        None,
        Scope.STREAM,
        Scope.TRAINING,
        Scope.RELEASE,
        Scope.HOUSEKEEPING,
    ]
    order += [s for s in Scope if s not in order]
    missing = [s.value for s in order if s is not None and s not in _READERS]
    if missing:
        raise ValueError(f"no description of scope {', '.join(missing)} in settings_doc._READERS")
    return [(s.value if s else COMMON, s, fields[s]) for s in order if fields.get(s)]


def render_reference() -> str:
    """docs/configuration.md: the intro, a list of the groups, then one table per group."""
    lines = [_INTRO, *_group_list("#"), ""]
    properties = Settings.model_json_schema(by_alias=False)["properties"]
    for name, scope, fields in groups():
        lines += [f"## {name}", "", f"{_READERS[scope][0].upper()}{_READERS[scope][1:]}.", ""]
        lines += ["| variable | default | required | value | description |", "|" + "---|" * 5]
        for field in fields:
            info = Settings.model_fields[field]
            extra = field_extra(info)
            cells = [
                f"`{field.upper()}`",
                _default_cell(info.default, secret=bool(extra.get("secret"))),
                f"yes ({', '.join(extra['scopes'])})" if extra.get("scopes") else "no",
                _kind(properties[field]),
                _md(info.description or ""),
            ]
            lines.append(f"| {' | '.join(cells)} |")
        lines.append("")
    lines += [f"## {DEPLOYMENT}", "", f"{_DEPLOYMENT_READERS[0].upper()}{_DEPLOYMENT_READERS[1:]}."]
    lines += ["", "| variable | default | required | description |", "|" + "---|" * 4]
    for var in DEPLOY_VARS:
        required = "yes (docker-compose)" if var.secret else "no"
        default = _default_cell(var.default, secret=var.secret)
        lines.append(f"| `{var.name}` | {default} | {required} | {_md(var.doc)} |")
    return "\n".join(lines) + "\n"


def render_group_list() -> str:
    """The guide's list of groups, each linked to its table; goes between the markers."""
    return "\n".join([GENERATED, "", *_group_list(f"{DOC_FILE.rsplit('/', 1)[-1]}#"), "", ""])


def splice(text: str, block: str) -> str:
    """``text`` with whatever lies between the markers replaced by ``block``."""
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not (start and end):
        raise ValueError(f"no {START} ... {END} block")
    return f"{head}{START}\n{block}{END}{tail}"


def _group_list(link: str) -> list[str]:
    rows = ["| group | variables | read by |", "|---|---|---|"]
    for name, scope, fields in groups():
        owned = ", ".join(f"`{p}*`" for p in prefixes(scope)) if scope else "every other name"
        rows.append(f"| [{name}]({link}{name}) | {len(fields)}: {owned} | {_READERS[scope]} |")
    deploy = f"[{DEPLOYMENT}]({link}{DEPLOYMENT})"
    rows.append(f"| {deploy} | {len(DEPLOY_VARS)} | {_DEPLOYMENT_READERS} |")
    return rows


def _default_cell(value: object, *, secret: bool) -> str:
    if secret:
        return "none (secret)"
    if value is None:
        return "none"
    return f"`{env_value(value)}`" if env_value(value) else "empty"


def _kind(prop: dict[str, Any]) -> str:
    """What a value may be, from the field's JSON schema: its type and bounds."""
    options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
    spec = options[0] if len(options) == 1 else prop
    if "enum" in spec:
        return "one of " + ", ".join(f"`{v}`" for v in spec["enum"])
    kind = spec.get("type", "")
    if kind == "boolean":
        return "`true` or `false`"
    if kind in ("integer", "number"):
        return f"{kind}{_bounds(spec)}"
    if spec.get("format") == "password":
        return "secret text"
    return "path" if spec.get("format") == "path" else "text"


def _bounds(spec: dict[str, Any]) -> str:
    low = ("[", spec["minimum"]) if "minimum" in spec else ("(", spec.get("exclusiveMinimum"))
    high = ("]", spec["maximum"]) if "maximum" in spec else (")", spec.get("exclusiveMaximum"))
    if low[1] is not None and high[1] is not None:
        return f" in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low[1] is not None:
        return f" ≥ {low[1]}" if low[0] == "[" else f" > {low[1]}"
    if high[1] is not None:
        return f" ≤ {high[1]}" if high[0] == "]" else f" < {high[1]}"
    return ""


def _md(text: str) -> str:
    """Text safe in a table cell: a pipe would split the cell, ``<root>`` would vanish as HTML."""
    return text.replace("|", "\\|").replace("<", "&lt;")
