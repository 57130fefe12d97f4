from pathlib import Path

from azaion_assets.lib.config.deployenv import DEPLOY_VARS
from azaion_assets.lib.config.envfile import render_env_example
from azaion_assets.lib.config.settings import Settings

REPO = Path(__file__).resolve().parents[3]


def test_env_example_is_generated_from_the_schema():
    committed = (REPO / ".env.example").read_text("utf-8")
    assert committed == render_env_example(), "regenerate with: azaion-assets env-example"


def test_env_example_names_every_variable_and_leaves_secrets_empty():
    lines = dict(
        line.split("=", 1)
        for line in render_env_example().splitlines()
        if line and not line.startswith("#")
    )
    settings = {name.upper() for name in Settings.model_fields}
    deployment = {var.name for var in DEPLOY_VARS}
    assert settings & deployment == set(), "a deployment variable shadows a setting"
    assert set(lines) == settings | deployment
    assert lines["RABBITMQ_PASSWORD"] == "" and lines["AZAION_API_PASSWORD"] == ""
    assert lines["RABBITMQ_QUEUE_NAME"] == "azaion-annotations"
    assert all(lines[var.name] == "" for var in DEPLOY_VARS if var.secret)
    assert lines["DAGSTER_POSTGRES_USER"] == "dagster"


def test_deployment_variables_follow_the_settings_in_their_own_section():
    text = render_env_example()
    head, _, tail = text.partition("# --- Deployment (docker-compose / Helm) ---")
    assert tail, "no deployment section"
    assert "DAGSTER_POSTGRES_PASSWORD=" in tail and "DAGSTER_POSTGRES_PASSWORD=" not in head
    assert "TRAINING_EPOCHS=" in head and "TRAINING_EPOCHS=" not in tail
