"""Where the dated partitions start: a setting, else the instance's own first day."""

import os
from datetime import UTC, date, datetime, timedelta

import pytest

from azaion_assets.defs.partitions import daily_partitions, partitions_start
from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.sources import load_settings
from azaion_assets.lib.ingest.ingest_state import IngestState, state_file
from azaion_assets_tests.conftest import clear_config_env

TODAY = datetime.now(UTC).date()


@pytest.fixture
def root(tmp_path, monkeypatch):
    clear_config_env(monkeypatch)
    monkeypatch.setenv("AZAION_ROOT_DIR", str(tmp_path))
    return tmp_path


def test_a_new_install_starts_today_and_lists_only_today(root):
    start = partitions_start(load_settings(scopes=()))
    assert start == TODAY
    assert daily_partitions(start).get_partition_keys() == [TODAY.isoformat()]
    assert not os.listdir(root)  # asking created nothing


def test_the_first_day_ingested_or_formed_is_the_start(root):
    ingested = TODAY - timedelta(days=3)
    with IngestState(state_file(root)) as state:
        at = datetime.combine(ingested, datetime.min.time(), tzinfo=UTC) + timedelta(hours=23)
        state.finish_partition("000-001", 0, 1, {"messages": 2}, at.isoformat())
    assert partitions_start(load_settings(scopes=())) == ingested
    formed = TODAY - timedelta(days=5)
    (root / "datasets" / f"azaion-{formed.isoformat()}").mkdir(parents=True)
    (root / "models" / "azaion-not-a-date").mkdir(parents=True)
    (root / "models" / "azaion.pt").write_bytes(b"")
    days = daily_partitions(partitions_start(load_settings(scopes=()))).get_partition_keys()
    assert days[0] == formed.isoformat() and days[-1] == TODAY.isoformat() and len(days) == 6


def test_the_setting_wins_and_a_future_day_is_refused_by_name(root, monkeypatch):
    (root / "datasets" / f"azaion-{(TODAY - timedelta(days=2)).isoformat()}").mkdir(parents=True)
    monkeypatch.setenv("DAILY_PARTITIONS_START", "2026-01-01")
    assert partitions_start(load_settings(scopes=())) == date(2026, 1, 1)
    monkeypatch.setenv("DAILY_PARTITIONS_START", (TODAY + timedelta(days=1)).isoformat())
    with pytest.raises(ConfigError, match="DAILY_PARTITIONS_START"):
        load_settings(scopes=())


def test_an_unreadable_state_starts_today(root):
    state_file(root).parent.mkdir(parents=True)
    state_file(root).write_bytes(b"not a database" * 100)
    assert partitions_start(load_settings(scopes=())) == TODAY
