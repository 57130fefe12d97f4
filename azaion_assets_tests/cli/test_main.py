import stat

import pytest
import yaml

from azaion_assets.cli.main import EXIT_CONFIG, main


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
    monkeypatch.setenv("MODEL_ENCRYPTION_KEY", "a-model-key-of-16+")
    (tmp_path / ".env").write_text("AZAION_API_EMAIL=ops@example.org\nAZAION_API_PASSWORD=pw\n")
    assert main(["config", "render"]) == 0
    path = tmp_path / "config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = yaml.safe_load(path.read_text())
    assert data["RABBITMQ_PASSWORD"] == "s3cret" and data["AZAION_API_EMAIL"] == "ops@example.org"
    assert data["MODEL_ENCRYPTION_KEY"] == "a-model-key-of-16+"
    out = capsys.readouterr().out
    assert "s3cret" not in out and "a-model-key-of-16+" not in out


def test_render_refuses_to_write_an_incomplete_config(tmp_path, capsys):
    assert main(["config", "render"]) == EXIT_CONFIG
    assert not (tmp_path / "config.yaml").exists()
    assert "RABBITMQ_PASSWORD" in capsys.readouterr().err


def test_synthetic_and_tree(root, capsys):
    assert main(["synthetic", "--count", "3", "--seed", "5"]) == 0
    assert len(list((root / "data" / "labels").iterdir())) == 3
    assert main(["synthetic", "--count", "2", "--unvalidated"]) == 0
    assert len(list((root / "data-seed" / "images").iterdir())) == 2


def _stream_messages(stream):
    import asyncio

    from azaion_assets.lib.stream.client import probe_tail, read_range
    from azaion_assets.lib.stream.contract import decode_message

    tail = asyncio.run(probe_tail(stream))
    assert tail is not None
    got = []
    asyncio.run(read_range(stream, 0, tail, lambda o, b, p: got.append(decode_message(b, p)), 5))
    return [d.event for d in got]


def test_publish_synthetic_folder_and_bulk_as_contract_messages(stream_env, tmp_path, capsys):
    from azaion_assets.dev.synthetic import write_samples
    from azaion_assets.lib.config.datatree import AnnotationDir
    from azaion_assets.lib.stream.events import AnnotationEvent, BulkEvent, Role, Status

    publish_synthetic = ["publish", "--role", "operator", "synthetic", "3", "--prefix", "op"]
    assert main([*publish_synthetic, "--videos", "2"]) == 0
    assert "sent 3 messages" in capsys.readouterr().out
    folder = AnnotationDir(tmp_path / "yolo")
    written = write_samples(folder, 2, seed=5)
    assert main(["publish", "folder", str(folder.root), "--edited"]) == 0
    (tmp_path / "names.txt").write_text("op_0000_000000\n\nop_0000_000001\n")
    assert main(["publish", "validate", "--names-file", str(tmp_path / "names.txt")]) == 0
    assert main(["publish", "delete", "op_0000_000002"]) == 0
    events = _stream_messages(stream_env)
    assert len(events) == 7
    created = [e for e in events[:3] if isinstance(e, AnnotationEvent)]
    assert len(created) == 3 and all(e.created_role is Role.OPERATOR for e in created)
    assert [(e.original_media_name, e.time_ticks) for e in created] == [
        ("op_flight_00.mp4", 0),
        ("op_flight_00.mp4", 400_000),
        ("op_flight_01.mp4", 0),
    ]
    edited = events[3:5]
    assert all(isinstance(e, AnnotationEvent) and e.status is Status.EDITED for e in edited)
    assert [e.name for e in edited if isinstance(e, AnnotationEvent)] == [s.name for s in written]
    first = edited[0]
    assert isinstance(first, AnnotationEvent)
    assert [(d.cls, round(d.x, 6)) for d in first.detections] == [
        (c, round(x, 6)) for c, x, *_ in written[0].boxes
    ]
    validate, delete = events[5], events[6]
    assert isinstance(validate, BulkEvent) and validate.status is Status.VALIDATED
    assert validate.names == ("op_0000_000000", "op_0000_000001")
    assert isinstance(delete, BulkEvent) and delete.names == ("op_0000_000002",)


def test_publish_without_a_password_names_it_and_exits_2(stream_env, monkeypatch, capsys):
    monkeypatch.delenv("RABBITMQ_PASSWORD")
    assert main(["publish", "synthetic", "1"]) == 2
    assert "RABBITMQ_PASSWORD" in capsys.readouterr().err


def test_a_fresh_demo_empties_its_state_but_keeps_the_instance_config(tmp_path, monkeypatch):
    from azaion_assets.cli.dev_commands import _start_fresh
    from azaion_assets.lib.config.config_error import ConfigError

    root, home = tmp_path / "azaion", tmp_path / "dagster"
    (root / "data" / "images").mkdir(parents=True)
    (root / "data" / "images" / "a.jpg").write_bytes(b"x")
    (home / "storage").mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    (home / "schedules.db").write_bytes(b"x")
    monkeypatch.setenv("RABBITMQ_HOST", "broker.example")
    with pytest.raises(ConfigError, match="RABBITMQ_HOST is set"):
        _start_fresh(root, home)
    assert (root / "data" / "images" / "a.jpg").exists()  # refused: nothing touched
    monkeypatch.delenv("RABBITMQ_HOST")
    _start_fresh(root, home)
    assert not root.exists()
    assert [p.name for p in home.iterdir()] == ["dagster.yaml"]


def test_config_check_names_an_export_size_ultralytics_would_round(capsys, monkeypatch):
    monkeypatch.setenv("EXPORT_ONNX_IMGSZ", "200")
    monkeypatch.setenv("TRAINING_IMGSZ", "640")
    assert main(["config", "check", "--scope", "training"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "EXPORT_ONNX_IMGSZ: must be a multiple of 32" in err and "use 192 or 224" in err
    assert "TRAINING_IMGSZ" not in err


def test_config_check_says_which_scopes_fail_and_how_to_check_one(capsys, monkeypatch):
    monkeypatch.setenv("TRAINING_EPOCHS", "-3")
    assert main(["config", "check"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert (
        "checked every scope; failing release: AZAION_API_EMAIL, AZAION_API_PASSWORD, "
        "MODEL_ENCRYPTION_KEY; stream: RABBITMQ_PASSWORD; training: TRAINING_EPOCHS" in err
    )
    assert "azaion-assets config check --scope training|stream|release" in err


def test_config_check_of_one_scope_passes_whatever_another_scope_holds(capsys, monkeypatch):
    """An operator who runs only the ingest checks what the ingest sees."""
    monkeypatch.setenv("TRAINING_EPOCHS", "-3")
    monkeypatch.setenv("RABBITMQ_PASSWORD", "s3cret")
    assert main(["config", "check", "--scope", "stream"]) == 0
    monkeypatch.setenv("STREAM_BATCH_MESSAGES", "0")
    assert main(["config", "check", "--scope", "stream"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "STREAM_BATCH_MESSAGES: must be at least 1" in err and "TRAINING_EPOCHS" not in err
    assert "checked stream; failing stream: STREAM_BATCH_MESSAGES" in err
    assert "--scope training|stream|release" not in err
