from pathlib import Path

import pytest
import yaml

from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.config.settings_views import missing, public_dict, secret_fields
from azaion_assets.lib.config.sources import load_settings
from azaion_assets.lib.stream.limits import MessageLimits, message_limits


def test_defaults_follow_the_seed():
    s = load_settings()
    assert s.azaion_api_url == "https://api.azaion.com"
    assert (s.rabbitmq_host, s.rabbitmq_port, s.rabbitmq_user) == (
        "127.0.0.1",
        5552,
        "azaion_receiver",
    )
    assert s.rabbitmq_queue_name == "azaion-annotations"
    assert s.azaion_root_dir == Path("/azaion")
    assert (s.azaion_data_dir, s.azaion_data_seed_dir, s.azaion_data_deleted_dir) == (
        "data",
        "data-seed",
        "data_deleted",
    )
    assert (s.training_model, s.training_epochs, s.training_batch_size) == ("yolo26m.pt", 120, 11)
    assert (s.training_imgsz, s.training_save_period, s.training_workers) == (1280, 1, 24)
    assert s.export_onnx_imgsz == 1280
    assert s.split_percentages == (70, 20, 10)


def test_secrets_have_no_defaults():
    s = load_settings()
    assert s.rabbitmq_password is None and s.azaion_api_password is None
    assert s.model_encryption_key is None
    assert set(secret_fields()) == {
        "AZAION_API_PASSWORD",
        "RABBITMQ_PASSWORD",
        "MODEL_ENCRYPTION_KEY",
    }


def test_precedence_env_over_dotenv_over_config_yaml(tmp_path, monkeypatch):
    (tmp_path / "config.yaml").write_text(
        "TRAINING_EPOCHS: 5\nTRAINING_BATCH_SIZE: 6\nTRAINING_IMGSZ: 320\n"
    )
    (tmp_path / ".env").write_text("TRAINING_BATCH_SIZE=7\nTRAINING_IMGSZ=640\n")
    monkeypatch.setenv("TRAINING_IMGSZ", "960")
    s = load_settings()
    assert (s.training_epochs, s.training_batch_size, s.training_imgsz) == (5, 7, 960)


def test_empty_values_in_dotenv_count_as_unset(tmp_path):
    (tmp_path / ".env").write_text("RABBITMQ_PASSWORD=\nAZAION_DATA_DIR=\n")
    s = load_settings()
    assert s.rabbitmq_password is None
    assert s.azaion_data_dir == "data"


def test_every_invalid_variable_is_listed_at_once(monkeypatch):
    monkeypatch.setenv("TRAINING_EPOCHS", "0")
    monkeypatch.setenv("RABBITMQ_PORT", "not-a-port")
    monkeypatch.setenv("DATASET_SPLIT", "50/40/20")
    with pytest.raises(ConfigError) as info:
        load_settings()
    names = sorted(p.split(":")[0] for p in info.value.problems)
    assert names == ["DATASET_SPLIT", "RABBITMQ_PORT", "TRAINING_EPOCHS"]


def test_invalid_values_are_never_echoed(monkeypatch):
    monkeypatch.setenv("RABBITMQ_PORT", "hunter2-secret")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "hunter2" not in str(info.value)


def test_missing_lists_each_scope_secret(monkeypatch):
    s = load_settings()
    assert missing(s, {Scope.TRAINING}) == []
    assert [p.split(":")[0] for p in missing(s, {Scope.STREAM})] == ["RABBITMQ_PASSWORD"]
    assert [p.split(":")[0] for p in missing(s)] == [
        "AZAION_API_EMAIL",
        "AZAION_API_PASSWORD",
        "RABBITMQ_PASSWORD",
        "MODEL_ENCRYPTION_KEY",
    ]
    assert [p.split(":")[0] for p in missing(s, {Scope.RELEASE})] == [
        "AZAION_API_EMAIL",
        "AZAION_API_PASSWORD",
        "MODEL_ENCRYPTION_KEY",
    ]
    monkeypatch.setenv("RABBITMQ_PASSWORD", "s3cret")
    assert missing(load_settings(), {Scope.STREAM}) == []


def test_require_names_the_variable_and_returns_the_secret(monkeypatch):
    with pytest.raises(ConfigError, match="RABBITMQ_PASSWORD is not set"):
        load_settings().require("RABBITMQ_PASSWORD")
    monkeypatch.setenv("RABBITMQ_PASSWORD", "s3cret")
    assert load_settings().require("rabbitmq_password") == "s3cret"


def test_public_dict_masks_secrets(monkeypatch):
    monkeypatch.setenv("AZAION_API_PASSWORD", "s3cret-pw")
    public = public_dict(load_settings())
    assert public["AZAION_API_PASSWORD"] == "**********"
    assert "s3cret-pw" not in repr(public) and "s3cret-pw" not in repr(load_settings())


def test_unknown_and_malformed_config_yaml_are_reported(tmp_path):
    (tmp_path / "config.yaml").write_text("TRAINING_EPOCHZ: 3\nTRAINING_EPOCHS: 4\n")
    with pytest.raises(ConfigError, match="unknown variable TRAINING_EPOCHZ"):
        load_settings()
    (tmp_path / "config.yaml").write_text("TRAINING_EPOCHS: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings()


def test_config_yaml_round_trips(tmp_path, monkeypatch):
    from azaion_assets.lib.config.envfile import render_config_yaml

    monkeypatch.setenv("RABBITMQ_PASSWORD", "s3cret")
    monkeypatch.setenv("TRAINING_EPOCHS", "9")
    text = render_config_yaml(load_settings())
    assert yaml.safe_load(text)["RABBITMQ_PASSWORD"] == "s3cret"
    monkeypatch.delenv("RABBITMQ_PASSWORD")
    monkeypatch.delenv("TRAINING_EPOCHS")
    (tmp_path / "rendered.yaml").write_text(text)
    again = load_settings(tmp_path / "rendered.yaml")
    assert again.training_epochs == 9 and again.require("RABBITMQ_PASSWORD") == "s3cret"


def test_a_named_config_or_env_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .*nope\.yaml does not exist"):
        load_settings(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"env file .*nope\.env does not exist"):
        load_settings(env_file=tmp_path / "nope.env")
    (tmp_path / "given.env").write_text("TRAINING_EPOCHS=7\n")
    assert load_settings(env_file=tmp_path / "given.env").training_epochs == 7


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("MODEL_ENCRYPTION_KEY", "short-key", "at least 16 characters"),
        ("RELEASE_SCHEME", "aes-128-ecb", "aes-256-cbc"),
        ("RELEASE_SMALL_FRACTION", "1.5", "below 1"),
        ("RELEASE_SMALL_MAX_BYTES", "0", "at least 1"),
        ("AZAION_API_TIMEOUT_SECONDS", "0", "more than 0"),
        ("AZAION_API_RETRIES", "-1", "not be negative"),
    ],
)
def test_release_settings_are_validated_without_echoing_values(monkeypatch, name, value, problem):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert name in str(caught.value) and problem in str(caught.value)
    if name == "MODEL_ENCRYPTION_KEY":
        assert value not in str(caught.value)


def test_a_training_starts_from_the_base_unless_told_to_fine_tune(monkeypatch):
    s = load_settings()
    assert (s.training_start, s.training_finetune_epochs, s.training_full_every) == ("base", 30, 5)
    monkeypatch.setenv("TRAINING_START", "champion")
    monkeypatch.setenv("TRAINING_FULL_EVERY", "0")  # 0: no scheduled full retraining
    assert load_settings().training_start == "champion"
    assert load_settings().training_full_every == 0


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("TRAINING_START", "scratch", "'base' or 'champion'"),
        ("TRAINING_FINETUNE_EPOCHS", "0", "at least 1"),
        ("TRAINING_FULL_EVERY", "-1", "not be negative"),
    ],
)
def test_fine_tuning_settings_are_validated(monkeypatch, name, value, problem):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert name in str(caught.value) and problem in str(caught.value)


def test_the_tests_clear_every_variable_of_the_schema():
    """The hermetic test environment (conftest.clear_config_env) covers every setting."""
    from azaion_assets_tests.conftest import CONFIG_PREFIXES

    assert [n for n in Settings.model_fields if not n.upper().startswith(CONFIG_PREFIXES)] == []


def test_a_scoped_load_lets_another_scopes_bad_value_take_its_default(monkeypatch):
    monkeypatch.setenv("TRAINING_EPOCHS", "-3")
    monkeypatch.setenv("STREAM_BATCH_MESSAGES", "7")
    s = load_settings(scopes=[Scope.STREAM])
    assert (s.training_epochs, s.stream_batch_messages) == (120, 7)
    assert load_settings(scopes=()).training_epochs == 120
    for scopes in ([Scope.TRAINING], [Scope.STREAM, Scope.TRAINING], None):
        with pytest.raises(ConfigError) as caught:
            load_settings(scopes=scopes)
        assert caught.value.problems == ["TRAINING_EPOCHS: must be at least 1"]


def test_a_bad_common_value_fails_every_scope(monkeypatch, tmp_path):
    (tmp_path / "config.yaml").write_text("AZAION_DATA_DIR: [a, b]\nRABBITMQ_PORT: -1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(scopes=[Scope.TRAINING])
    assert [p.split(":")[0] for p in caught.value.problems] == ["AZAION_DATA_DIR"]


def test_values_given_in_code_are_used_below_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINING_BATCH_SIZE", "6")
    s = Settings(azaion_root_dir=tmp_path / "r", training_epochs=3, training_batch_size=2)
    assert (s.azaion_root_dir, s.training_epochs, s.training_batch_size) == (tmp_path / "r", 3, 6)


def test_the_message_limits_come_from_the_stream_settings(monkeypatch):
    monkeypatch.setenv("STREAM_MAX_IMAGE_PIXELS", "1000")
    monkeypatch.setenv("STREAM_MAX_IMAGE_ASPECT", "2.5")
    assert message_limits(Settings()) == MessageLimits(max_pixels=1000, max_aspect=2.5)
    assert message_limits(Settings(stream_max_image_aspect=8)).max_pixels == 1000
    monkeypatch.setenv("STREAM_MAX_IMAGE_ASPECT", "0.5")  # a long side shorter than the short one
    with pytest.raises(ConfigError) as caught:
        load_settings(scopes=[Scope.STREAM])
    assert caught.value.problems == ["STREAM_MAX_IMAGE_ASPECT: must be at least 1"]
