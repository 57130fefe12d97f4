"""Which training checkpoint a retry may resume from, and how many to keep.

Ultralytics writes ``last.pt`` (and ``epochN.pt`` every TRAINING_SAVE_PERIOD epochs) with a plain
``write_bytes``: a process killed during that write leaves a torn file. So the resumable
checkpoint is the newest of ``last.pt`` and the epoch files that loads completely and still holds
its optimizer state. A finished training strips the optimizer (``strip_optimizer``); such a file
is a final model, never resumed, because resuming it would quietly restart the schedule.

A resume also needs the training it continues to be the same one: the run directory records
the dataset version and hyperparameters it started with (``azaion-resume.json``), and a
checkpoint from different data or settings is not resumed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azaion_assets.lib.fsio.atomic import atomic_write_text

RESUME_RECORD = "azaion-resume.json"
KEEP_EPOCH_FILES = 2  # periodic epochN.pt files kept; each can be hundreds of MB
_EPOCH_FILE = re.compile(r"epoch(\d+)\.pt$")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    epoch: int  # 0-based index of the last epoch the checkpoint completed, as Ultralytics stores it


def epoch_files(weights: Path) -> list[Path]:
    """``epochN.pt`` files, newest first."""
    found = [
        (int(m.group(1)), p) for p in weights.glob("epoch*.pt") if (m := _EPOCH_FILE.search(p.name))
    ]
    return [p for _, p in sorted(found, reverse=True)]


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint dictionary, or None if the file is torn, empty or not a checkpoint."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # a torn write fails in many ways inside the unpickler
        return None
    return ckpt if isinstance(ckpt, dict) else None


def resumable(ckpt: dict[str, Any] | None, epochs: int) -> bool:
    """Unstripped (optimizer state present) and not past the last epoch."""
    if ckpt is None or ckpt.get("optimizer") is None:
        return False
    epoch = ckpt.get("epoch", -1)
    return isinstance(epoch, int) and 0 <= epoch < epochs - 1


def find_resumable(weights: Path, epochs: int) -> Checkpoint | None:
    """The newest checkpoint in ``weights`` that a training to ``epochs`` epochs can resume."""
    best: Checkpoint | None = None
    for path in [weights / "last.pt", *epoch_files(weights)[:KEEP_EPOCH_FILES]]:
        if not path.is_file():
            continue
        ckpt = load_checkpoint(path)
        if resumable(ckpt, epochs):
            assert ckpt is not None
            if best is None or ckpt["epoch"] > best.epoch:
                best = Checkpoint(path, ckpt["epoch"])
    return best


def prune_epoch_files(weights: Path, keep: int = KEEP_EPOCH_FILES) -> list[Path]:
    """Delete all but the ``keep`` newest ``epochN.pt`` files; return the deleted ones."""
    stale = epoch_files(weights)[keep:]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_resume_record(run_dir: Path, identity: dict[str, Any]) -> None:
    atomic_write_text(run_dir / RESUME_RECORD, json.dumps(identity, indent=2, sort_keys=True))


def resume_mismatch(run_dir: Path, identity: dict[str, Any]) -> str | None:
    """Why the training in ``run_dir`` is not the one described by ``identity`` (None: it is)."""
    path = run_dir / RESUME_RECORD
    if not path.is_file():
        return f"{RESUME_RECORD} is missing, so what it trained on is unknown"
    try:
        recorded = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return f"{RESUME_RECORD} is unreadable"
    changed = sorted(
        k for k in identity.keys() | recorded.keys() if identity.get(k) != recorded.get(k)
    )
    return f"it was started with different {', '.join(changed)}" if changed else None
