import json

from azaion_assets.lib.config.datatree import DataTree


def test_tree_is_created_idempotently_with_the_seed_layout(settings):
    tree = DataTree.from_settings(settings)
    tree.ensure()
    (tree.classes_file).write_text('[{"Id": 0, "Name": "Custom"}]')
    tree.ensure()  # second call keeps an operator's classes.json
    root = settings.azaion_root_dir
    for name in ("data", "data-seed", "data_deleted", "data-corrupted"):
        assert (root / name / "images").is_dir() and (root / name / "labels").is_dir()
    assert (root / "datasets").is_dir() and (root / "models").is_dir()
    assert json.loads(tree.classes_file.read_text())[0]["Name"] == "Custom"


def test_dir_names_come_from_settings(monkeypatch, root):
    monkeypatch.setenv("AZAION_DATA_DIR", "validated")
    monkeypatch.setenv("AZAION_DATA_SEED_DIR", "seed")
    from azaion_assets.lib.config.sources import load_settings

    tree = DataTree.from_settings(load_settings()).ensure()
    assert tree.data.root == root / "validated" and tree.seed.root == root / "seed"
    assert tree.dataset_dir("2026-11-24") == root / "datasets" / "azaion-2026-11-24"
    assert tree.model_dir("2026-11-24") == root / "models" / "azaion-2026-11-24"
    assert tree.champion == root / "models" / "azaion.pt"
