from pathlib import Path

from azaion_assets.core.envfile import render_env_example
from azaion_assets.core.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_env_example_is_generated_from_the_schema():
    committed = (REPO / ".env.example").read_text("utf-8")
    assert committed == render_env_example(), "regenerate with: azaion-assets env-example"


def test_env_example_names_every_variable_and_leaves_secrets_empty():
    lines = dict(
        line.split("=", 1)
        for line in render_env_example().splitlines()
        if line and not line.startswith("#")
    )
    assert set(lines) == {name.upper() for name in Settings.model_fields}
    assert lines["RABBITMQ_PASSWORD"] == "" and lines["AZAION_API_PASSWORD"] == ""
    assert lines["RABBITMQ_QUEUE_NAME"] == "azaion-annotations"
