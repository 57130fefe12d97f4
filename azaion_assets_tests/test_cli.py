import stat

import yaml

from azaion_assets.cli import EXIT_CONFIG, main


def test_config_check_lists_every_problem_and_exits_2(capsys, monkeypatch):
    monkeypatch.setenv("TRAINING_EPOCHS", "-3")
    assert main(["config", "check"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    for name in ("TRAINING_EPOCHS", "AZAION_API_EMAIL", "AZAION_API_PASSWORD"):
        assert name in err


def test_config_check_reports_all_scoped_gaps_together(capsys):
    assert main(["config", "check"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    for name in ("AZAION_API_EMAIL", "AZAION_API_PASSWORD", "RABBITMQ_PASSWORD", "TRAINING_MODEL"):
        assert name in err


def test_config_check_passes_for_a_scope_and_never_prints_secrets(capsys, monkeypatch):
    monkeypatch.setenv("TRAINING_MODEL", "yolo26n.yaml")
    monkeypatch.setenv("RABBITMQ_PASSWORD", "hunter2-very-secret")
    assert main(["config", "check", "--scope", "training", "--scope", "stream"]) == 0
    out = capsys.readouterr()
    assert "hunter2" not in out.out + out.err
    assert "RABBITMQ_PASSWORD=**********" in out.out


def test_render_writes_0600_config_that_loads_back(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRAINING_MODEL", "yolo26n.yaml")
    monkeypatch.setenv("RABBITMQ_PASSWORD", "s3cret")
    (tmp_path / ".env").write_text("AZAION_API_EMAIL=ops@example.org\nAZAION_API_PASSWORD=pw\n")
    assert main(["config", "render"]) == 0
    path = tmp_path / "config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = yaml.safe_load(path.read_text())
    assert data["RABBITMQ_PASSWORD"] == "s3cret" and data["AZAION_API_EMAIL"] == "ops@example.org"
    assert "s3cret" not in capsys.readouterr().out


def test_render_refuses_to_write_an_incomplete_config(tmp_path, capsys):
    assert main(["config", "render"]) == EXIT_CONFIG
    assert not (tmp_path / "config.yaml").exists()
    assert "RABBITMQ_PASSWORD" in capsys.readouterr().err


def test_env_example_check_detects_drift(tmp_path):
    assert main(["env-example", "--output", str(tmp_path / "e")]) == 0
    assert main(["env-example", "--check", "--output", str(tmp_path / "e")]) == 0
    (tmp_path / "e").write_text("STALE=1\n")
    assert main(["env-example", "--check", "--output", str(tmp_path / "e")]) == 1


def test_synthetic_and_tree(root, capsys):
    assert main(["synthetic", "--count", "3", "--seed", "5"]) == 0
    assert len(list((root / "data" / "labels").iterdir())) == 3
    assert main(["synthetic", "--count", "2", "--unvalidated"]) == 0
    assert len(list((root / "data-seed" / "images").iterdir())) == 2
