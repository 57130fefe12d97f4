import os
import stat

import pytest

from azaion_assets.lib.fsio import atomic
from azaion_assets.lib.fsio.atomic import (
    atomic_copy,
    atomic_write_bytes,
    atomic_write_text,
    replace_dir,
)


def test_write_replaces_content_and_sets_mode(tmp_path):
    target = tmp_path / "sub" / "config.yaml"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two", mode=0o600)
    assert target.read_text() == "two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["config.yaml"]


def test_crash_mid_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "azaion.pt"
    atomic_write_bytes(target, b"old weights")

    def crash(fd):
        raise OSError("disk died during fsync")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk died"):
        atomic_write_bytes(target, b"new weights that never land")
    assert target.read_bytes() == b"old weights"
    assert [p.name for p in tmp_path.iterdir()] == ["azaion.pt"]


def test_copy_is_atomic_and_keeps_content(tmp_path, monkeypatch):
    src = tmp_path / "best.pt"
    src.write_bytes(os.urandom(3 << 20))
    dst = tmp_path / "models" / "azaion.pt"
    atomic_copy(src, dst)
    first = src.read_bytes()
    assert dst.read_bytes() == first
    src.write_bytes(os.urandom(3 << 20))  # a new model, whose copy crashes before the rename
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises(OSError):
        atomic_copy(src, dst)
    assert dst.read_bytes() == first
    assert sorted(p.name for p in dst.parent.iterdir()) == ["azaion.pt"]


@pytest.mark.parametrize("exchange", [True, False])
def test_replace_dir_swaps_whole_directories(tmp_path, monkeypatch, exchange):
    swaps: list[bool] = []
    real_exchange = atomic._exchange

    def spy(a, b):
        swaps.append(real_exchange(a, b) if exchange else False)
        return swaps[-1]

    monkeypatch.setattr(atomic, "_exchange", spy)
    target = tmp_path / "azaion-2026-01-01"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staging = tmp_path / ".staging"
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    replace_dir(staging, target)
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["azaion-2026-01-01"]
    assert swaps == [exchange]  # with renameat2 support, one atomic exchange did the swap


def test_replace_dir_into_a_new_place(tmp_path):
    staging = tmp_path / ".staging"
    staging.mkdir()
    (staging / "a").write_text("a")
    replace_dir(staging, tmp_path / "fresh")
    assert (tmp_path / "fresh" / "a").read_text() == "a"


def test_temp_files_are_hidden_beside_their_target_unique_and_keep_the_mode(tmp_path):
    target = str(tmp_path / "x.jpg")
    names = {atomic.temp_path(target, ".s") for _ in range(1000)}
    assert len(names) == 1000
    assert all(n.startswith(f"{tmp_path}/.x.jpg.") and n.endswith(".s") for n in names)
    old = os.umask(0o077)
    try:
        fd, tmp = atomic.open_temp(target, mode=0o644)
    finally:
        os.umask(old)
    os.close(fd)
    assert tmp.endswith(atomic.TEMP_SUFFIX) and stat.S_IMODE(os.stat(tmp).st_mode) == 0o644


def test_the_sweep_removes_hidden_temps_of_its_suffix_only(tmp_path):
    names = [".a.jpg.1-ff-0.ingest-tmp", ".b.txt.1-ff-1.ingest-tmp", "c.ingest-tmp", ".d.1.tmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert atomic.sweep_temps([tmp_path, tmp_path / "missing"], ".ingest-tmp") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".d.1.tmp", "c.ingest-tmp"]
