from pathlib import Path

import pytest

from azaion_assets.lib.config.deployenv import DEPLOY_VARS
from azaion_assets.lib.config.fields import Scope, owner
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.config.settings_doc import (
    DOC_FILE,
    END,
    GUIDE_FILE,
    START,
    render_group_list,
    render_reference,
    splice,
)
from azaion_assets.lib.config.settings_views import secret_fields

REPO = Path(__file__).resolve().parents[3]
GROUPS = ["common", *(s.value for s in Scope), "deployment"]


def _tables(text: str) -> dict[str, dict[str, list[str]]]:
    """Each ``## group``'s rows by variable: the cells after the variable's own."""
    tables: dict[str, dict[str, list[str]]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:]
            tables[section] = {}
        elif section and line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            name = cells[0].strip("`")
            assert name not in tables[section], f"{name} twice in {section}"
            tables[section][name] = cells[1:]
    return tables


def _rows() -> dict[str, list[str]]:
    return {
        name: cells for rows in _tables(render_reference()).values() for name, cells in rows.items()
    }


def test_committed_reference_and_guide_list_are_generated_from_the_schema():
    regenerate = "regenerate with: azaion-assets settings-doc"
    assert (REPO / DOC_FILE).read_text("utf-8") == render_reference(), regenerate
    guide = (REPO / GUIDE_FILE).read_text("utf-8")
    assert splice(guide, render_group_list()) == guide, regenerate


def test_every_variable_appears_once_in_its_scope_table():
    tables = _tables(render_reference())
    assert list(tables) == [
        "common",
        "stream",
        "training",
        "release",
        "housekeeping",
        "deployment",
    ]
    for field in Settings.model_fields:
        scope = owner(field)
        homes = [group for group, rows in tables.items() if field.upper() in rows]
        assert homes == [scope.value if scope else "common"], field
    assert set(tables["deployment"]) == {var.name for var in DEPLOY_VARS}
    settings_rows = sum(len(rows) for group, rows in tables.items() if group != "deployment")
    assert settings_rows == len(Settings.model_fields)


def test_guide_names_every_group_and_links_its_table():
    block = render_group_list()
    for group in GROUPS:
        assert f"| [{group}](configuration.md#{group}) |" in block
    assert "`RABBITMQ_*`, `STREAM_*`" in block


def test_secrets_show_no_default_and_the_rest_show_theirs():
    rows = _rows()
    secrets = secret_fields() + [var.name for var in DEPLOY_VARS if var.secret]
    assert {"RABBITMQ_PASSWORD", "MODEL_ENCRYPTION_KEY", "MINIO_ROOT_PASSWORD"} <= set(secrets)
    for name in secrets:
        assert rows[name][0] == "none (secret)", name
        assert rows[name][1].startswith("yes ("), name
    assert rows["RABBITMQ_PASSWORD"][:3] == ["none (secret)", "yes (stream)", "secret text"]
    assert rows["RABBITMQ_QUEUE_NAME"][:2] == ["`azaion-annotations`", "no"]
    assert rows["AZAION_API_EMAIL"][:2] == ["none", "yes (release)"]
    assert rows["TRAINING_AMP"][:3] == ["`true`", "no", "`true` or `false`"]


def test_values_show_their_bounds_and_cells_stay_whole():
    rows = _rows()
    assert rows["TRAINING_EPOCHS"][2] == "integer ≥ 1"
    assert rows["RETRAIN_PROMOTION_TOLERANCE"][2] == "number in [0, 1)"
    assert rows["RELEASE_SMALL_FRACTION"][2] == "number in (0, 1)"
    assert rows["TRAINING_MAX_RUNTIME_HOURS"][2] == "number > 0"
    assert rows["RELEASE_SCHEME"][2] == "one of `aes-256-cbc`, `aes-256-gcm`"
    assert rows["AZAION_ROOT_DIR"][2] == "path"
    assert "default &lt;root>/.runtime" in rows["AZAION_RUNTIME_DIR"][3]  # else HTML, hidden


def test_splice_replaces_only_the_marked_block():
    text = f"intro\n{START}\nold\n{END}\nrest\n"
    assert splice(text, "new\n") == f"intro\n{START}\nnew\n{END}\nrest\n"
    for broken in ("no markers here\n", f"{START}\nno end: the rest would be lost\n"):
        with pytest.raises(ValueError, match="settings:start"):
            splice(broken, "new\n")
