from azaion_assets.cli.main import EXIT_CONFIG, main
from azaion_assets.lib.config.settings_doc import END, START


def test_env_example_check_detects_drift(tmp_path):
    assert main(["env-example", "--output", str(tmp_path / "e")]) == 0
    assert main(["env-example", "--check", "--output", str(tmp_path / "e")]) == 0
    (tmp_path / "e").write_text("STALE=1\n")
    assert main(["env-example", "--check", "--output", str(tmp_path / "e")]) == 1


def test_settings_doc_check_names_each_stale_file(tmp_path, capsys):
    doc, guide = tmp_path / "configuration.md", tmp_path / "configuring.md"
    guide.write_text(f"# intro\n{START}\nhand-written\n{END}\nrest\n")
    paths = ["--output", str(doc), "--guide", str(guide)]
    assert main(["settings-doc", *paths]) == 0
    assert "| [stream](configuration.md#stream) |" in guide.read_text()
    written = guide.read_text()
    assert written.endswith(f"{END}\nrest\n") and "hand-written" not in written
    assert main(["settings-doc", "--check", *paths]) == 0
    assert capsys.readouterr().err == ""

    doc.write_text(doc.read_text().replace("RABBITMQ_PASSWORD", "RABBITMQ_SECRET"))
    assert main(["settings-doc", "--check", *paths]) == 1
    err = capsys.readouterr().err
    assert f"{doc} is out of date; run: azaion-assets settings-doc" in err
    assert str(guide) not in err

    assert main(["settings-doc", *paths]) == 0
    guide.write_text(guide.read_text().replace(": every other name |", ": every name |"))
    assert main(["settings-doc", "--check", *paths]) == 1
    err = capsys.readouterr().err
    assert f"{guide} is out of date" in err and str(doc) not in err


def test_settings_doc_names_a_guide_without_the_markers(tmp_path, capsys):
    guide = tmp_path / "configuring.md"
    guide.write_text("# no markers\n")
    args = ["settings-doc", "--output", str(tmp_path / "c.md"), "--guide", str(guide)]
    assert main(args) == EXIT_CONFIG
    assert f"{guide}: no {START} ... {END} block" in capsys.readouterr().err
    assert not (tmp_path / "c.md").exists() and guide.read_text() == "# no markers\n"
