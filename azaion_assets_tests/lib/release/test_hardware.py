"""The hardware fingerprint reads what the machine shows, and the bound key changes with any
of hardware, account or password."""

import os
from pathlib import Path

from azaion_assets.lib.release import hardware


def test_fingerprint_names_each_part_and_is_stable():
    first = hardware.fingerprint()
    assert first == hardware.fingerprint()
    for part in ("CPU: ", "GPU: ", "Memory: ", "DriveSerial: "):
        assert part in first
    assert hardware.memory_gib().endswith(" GiB")  # /proc/meminfo is always there on Linux


def test_cpu_and_memory_from_proc(tmp_path: Path):
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nmodel name\t: Example CPU 9000\n")
    (tmp_path / "meminfo").write_text("MemTotal:       25165824 kB\nMemFree: 1 kB\n")
    assert hardware.cpu_model(tmp_path) == "Example CPU 9000"
    assert hardware.memory_gib(tmp_path) == "24 GiB"
    assert hardware.cpu_model(tmp_path / "missing") == hardware.UNKNOWN
    assert hardware.memory_gib(tmp_path / "missing") == hardware.UNKNOWN


def test_disk_serial_is_read_from_the_root_disk_in_sysfs(tmp_path: Path):
    """A partition's own node has no serial; its disk (the parent in sysfs) has."""
    device = os.stat(tmp_path).st_dev
    disk = tmp_path / "sys" / "devices" / "pci0" / "sda"
    (disk / "sda1").mkdir(parents=True)
    (disk / "device").mkdir()
    (disk / "device" / "serial").write_text("SERIAL-123\n")
    links = tmp_path / "sys" / "dev" / "block"
    links.mkdir(parents=True)
    (links / f"{os.major(device)}:{os.minor(device)}").symlink_to(disk / "sda1")
    assert hardware.disk_serial(tmp_path / "sys", str(tmp_path)) == "SERIAL-123"
    assert hardware.disk_serial(tmp_path / "nosys", str(tmp_path)) == hardware.UNKNOWN


def test_the_bound_key_depends_on_hardware_account_and_password():
    base = hardware.hardware_key("CPU: a", "e@x", "pw")
    assert base == hardware.hardware_key("CPU: a", "e@x", "pw")
    others = {
        hardware.hardware_key("CPU: b", "e@x", "pw"),
        hardware.hardware_key("CPU: a", "f@x", "pw"),
        hardware.hardware_key("CPU: a", "e@x", "pw2"),
    }
    assert base not in others and len(others) == 3
