"""The hardware fingerprint, and the hardware-bound key that protects ``cdn.yaml``.

The Azaion API encrypts what it serves to a machine (notably ``cdn.yaml``, the CDN
credentials) with a key derived from that machine's fingerprint and the account's credentials,
so a copied response is useless on another machine or to another account. The fingerprint is
what the machine can read about itself: CPU model, GPU models, total memory and the serial of
the disk holding the root filesystem. A part that cannot be read is ``unknown`` rather than an
error, so the fingerprint is stable on machines (and containers) that hide it.

The fingerprint itself is not secret (it is sent to the API); the derived key is.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

UNKNOWN = "unknown"


def _first_line(path: Path, prefix: str) -> str | None:
    try:
        for line in path.read_text("utf-8", errors="replace").splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def cpu_model(proc: Path = Path("/proc")) -> str:
    return _first_line(proc / "cpuinfo", "model name") or UNKNOWN


def memory_gib(proc: Path = Path("/proc")) -> str:
    """Total memory, rounded to whole GiB: MemTotal moves by a few MB between kernels."""
    value = _first_line(proc / "meminfo", "MemTotal")
    if value is None or not value.split()[0].isdigit():
        return UNKNOWN
    return f"{round(int(value.split()[0]) / (1 << 20))} GiB"


def gpu_models() -> str:
    """NVIDIA GPU names from ``nvidia-smi``, comma-separated; ``unknown`` without one."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return UNKNOWN
    try:
        out = subprocess.run(
            [tool, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    names = [line.strip() for line in out.splitlines() if line.strip()]
    return ", ".join(names) or UNKNOWN


def disk_serial(sys: Path = Path("/sys"), mount: str = "/") -> str:
    """Serial of the disk that holds ``mount``, from sysfs; ``unknown`` where it is hidden."""
    try:
        device = os.stat(mount).st_dev
        entry = sys / "dev" / "block" / f"{os.major(device)}:{os.minor(device)}"
        node = entry.resolve(strict=True)
    except OSError:
        return UNKNOWN
    # A partition's disk is its parent directory in sysfs; try the node, then the disk.
    for candidate in (node, node.parent):
        for name in ("serial", "device/serial", "wwid", "device/wwid"):
            try:
                value = (candidate / name).read_text("utf-8", errors="replace").strip()
            except OSError:
                continue
            if value:
                return value
    return UNKNOWN


def fingerprint() -> str:
    """The string sent to the API as ``hardware``."""
    return (
        f"CPU: {cpu_model()}. GPU: {gpu_models()}. Memory: {memory_gib()}. "
        f"DriveSerial: {disk_serial()}."
    )


def hardware_hash(hardware: str) -> str:
    return hashlib.sha256(f"azaion-hardware:{hardware}".encode()).hexdigest()


def hardware_key(hardware: str, email: str, password: str) -> str:
    """The key string (see ``crypto.derive_key``) of API responses bound to this machine
    and account. The API derives the same from the request's ``hardware`` and the account."""
    return f"{email}:{password}:{hardware_hash(hardware)}"
