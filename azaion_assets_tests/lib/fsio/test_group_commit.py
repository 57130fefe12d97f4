"""A group of file changes lands whole: writes replace their targets, moves and removals follow,
a failed write leaves nothing behind, and the data is durable before any rename."""

import os

import pytest

from azaion_assets.lib.fsio import group_commit
from azaion_assets.lib.fsio.atomic import sweep_temps
from azaion_assets.lib.fsio.group_commit import FileChanges, commit

SUFFIX = ".test-tmp"


def _listing(root) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _tree(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.txt").write_bytes(b"old x")
    (tmp_path / "a" / "moving.txt").write_bytes(b"moving")
    (tmp_path / "b" / "stale.txt").write_bytes(b"stale")
    return tmp_path


def _changes(root) -> FileChanges:
    return FileChanges(
        writes=[(f"{root}/a/x.txt", b"new x"), (f"{root}/c/y.txt", b"y" * 100_000)],
        moves=[(f"{root}/a/moving.txt", f"{root}/b/moving.txt"), (f"{root}/a/gone", f"{root}/b/g")],
        removals=[f"{root}/b/stale.txt", f"{root}/b/absent.txt"],
    )


def test_a_group_writes_moves_and_removes_and_leaves_no_temp(tmp_path):
    root = _tree(tmp_path)
    commit(_changes(root), SUFFIX)
    assert _listing(root) == {
        "a/x.txt": b"new x",
        "b/moving.txt": b"moving",
        "c/y.txt": b"y" * 100_000,
    }
    commit(_changes(root), SUFFIX)  # again, as after a crash before the caller's commit
    assert _listing(root)["c/y.txt"] == b"y" * 100_000 and "a/moving.txt" not in _listing(root)


def test_a_failed_write_leaves_every_target_as_it_was_and_no_temp(tmp_path, monkeypatch):
    root = _tree(tmp_path)
    before = _listing(root)
    real_write = os.write

    def full_disk(fd, data):
        if bytes(data[:1]) == b"y":
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError, match="No space"):
        commit(_changes(root), SUFFIX)
    assert _listing(root) == before


@pytest.mark.parametrize("syncfs", [True, False])
def test_the_data_is_durable_before_any_rename(tmp_path, monkeypatch, syncfs):
    """With ``syncfs``: one per filesystem for the group, and an fsync per touched directory
    only; without it: an fsync per file too. Either way every sync comes before any rename."""
    if syncfs and group_commit._SYNCFS is None:
        pytest.skip("no syncfs(2) here")
    if not syncfs:
        monkeypatch.setattr(group_commit, "_SYNCFS", None)
    root = _tree(tmp_path)
    calls: list[str] = []
    real_fsync, real_replace, real_sync = os.fsync, os.replace, group_commit._sync_filesystems

    def fsync(fd):
        calls.append("fsync")
        return real_fsync(fd)

    def replace(src, dst):
        calls.append("rename")
        return real_replace(src, dst)

    def sync_filesystems(folders):
        calls.append("syncfs")
        return real_sync(folders)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(group_commit, "_sync_filesystems", sync_filesystems)
    commit(_changes(root), SUFFIX)
    data_syncs = ["syncfs"] if syncfs else ["fsync", "fsync"]  # two files written
    renames = ["rename"] * 4  # two temps, two moves (one finds its source gone)
    assert calls == [*data_syncs, *renames, *["fsync"] * 3]  # the directories a, b and c


def test_temps_of_a_group_that_crashed_before_its_renames_are_swept(tmp_path, monkeypatch):
    root = _tree(tmp_path)
    before = _listing(root)

    def power_cut(src, dst):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(KeyboardInterrupt):
        commit(_changes(root), SUFFIX)
    monkeypatch.undo()
    temps = _listing(root).keys() - before.keys()
    assert len(temps) == 2 and all(os.path.basename(t).startswith(".") for t in temps)
    assert all(t.endswith(SUFFIX) for t in temps)
    assert sweep_temps([root / "a", root / "b", root / "c", root / "none"], SUFFIX) == 2
    assert _listing(root) == before
